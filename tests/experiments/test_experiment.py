"""``gensim experiment`` on the fake model: the aggregates equal numpy/scipy on the raw rows, one plot
per metric, a re-run skips finished runs, a killed experiment re-run ends as an uninterrupted one,
seeds make runs differ and repeat exactly, and a changed design is refused."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulation.experiments import ExperimentDesign, run_experiment
from simulation.experiments.run import CLI
from tests.runs import METRICS, gensim, rows

ARGS = ["polling", "--llm", "fake", "--rounds", "3", "--seeds", "3", "--grid", "agents=10,16",
        "--baseline", "agents=10"]


def experiment(out: Path, *extra: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = gensim("experiment", *ARGS, "--out", str(out), *extra)
    return code, buf.getvalue()


def outcomes(results: pd.DataFrame) -> pd.DataFrame:
    """The simulated figures (costs are the machine's, never repeated exactly)."""
    keep = results[~results["metric"].str.startswith("cost.")]
    return keep.sort_values(["cell", "seed", "round", "metric"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "e"
    code, printed = experiment(out)
    assert code == 0, printed
    return out, printed


def test_aggregates_equal_numpy_and_scipy_on_the_raw_rows(done):
    out, printed = done
    raw = pd.read_parquet(out / "results.parquet")
    assert list(raw.columns) == ["cell", "agents", "seed", "round", "metric", "value"]
    assert sorted(raw["cell"].unique()) == ["agents=10", "agents=16"] and sorted(raw["seed"].unique()) == [1, 2, 3]
    assert {"share_yes", "cost.wall_s", "cost.llm_calls"} <= set(raw["metric"])
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == raw.groupby(["cell", "round", "metric"]).ngroups
    for row in summary.itertuples():
        v = raw[(raw["cell"] == row.cell) & (raw["round"] == row.round) & (raw["metric"] == row.metric)]["value"]
        v = v.to_numpy(dtype=float)
        assert row.n == len(v) == 3 and row.mean == pytest.approx(v.mean())
        assert row.sd == pytest.approx(v.std(ddof=1))
        lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v)) if v.std() > 0 else (v.mean(),) * 2
        assert (row.ci_lo, row.ci_hi) == (pytest.approx(lo), pytest.approx(hi))
    last = summary[(summary["round"] == 3) & (summary["metric"] == "share_yes")].set_index("cell")
    a = raw[(raw["cell"] == "agents=16") & (raw["round"] == 3) & (raw["metric"] == "share_yes")]["value"].to_numpy()
    b = raw[(raw["cell"] == "agents=10") & (raw["round"] == 3) & (raw["metric"] == "share_yes")]["value"].to_numpy()
    diff = a.mean() - b.mean()
    assert last.loc["agents=16", "diff"] == pytest.approx(diff) and last.loc["agents=10", "diff"] == 0
    se = np.sqrt(a.var(ddof=1) / 3 + b.var(ddof=1) / 3)
    if se > 0:
        dof = se ** 4 / ((a.var(ddof=1) / 3) ** 2 / 2 + (b.var(ddof=1) / 3) ** 2 / 2)
        half = stats.t.ppf(0.975, dof) * se
        assert (last.loc["agents=16", "diff_lo"], last.loc["agents=16", "diff_hi"]) == (
            pytest.approx(diff - half), pytest.approx(diff + half))
    t = stats.ttest_ind(a, b, equal_var=False)  # the same Welch test, as scipy reports it
    assert np.isnan(t.pvalue) or (t.pvalue < 0.05) == (not last.loc["agents=16", "diff_lo"] <= 0 <= last.loc[
        "agents=16", "diff_hi"])
    assert summary[summary["round"] < 3]["diff"].isna().all(), "differences are on the last round"
    plots = {p.name for p in (out / "plots").iterdir()}
    assert plots == {f"{m}.png" for m in raw["metric"].unique()}, "one PNG per metric"
    assert "Last round by cell" in printed and "agents=16" in printed.split("Last round by cell")[1]
    rec = json.loads((out / "experiment.json").read_text())
    assert rec["design"]["seeds"] == [1, 2, 3] and rec["seeds_per_cell"] == {"agents=10": 3, "agents=16": 3}


def test_a_rerun_skips_finished_runs_and_a_changed_design_is_refused(done, capsys):
    out, _ = done
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.sqlite")}
    code, printed = experiment(out)
    assert code == 0 and "6 finished before, 0 to run" in printed
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.sqlite")} == before
    capsys.readouterr()
    assert gensim("experiment", *ARGS[:-4], "--grid", "agents=10,20", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "another experiment" in err and "grid" in err and "Traceback" not in err
    assert gensim("experiment", *ARGS, "--baseline", "agents=12", "--out", str(out)) == 2
    assert "agents=12" in capsys.readouterr().err
    assert gensim("experiment", *ARGS[:5], "--seeds", "2", *ARGS[7:], "--out", str(out)) == 2, "a seed removed"
    assert "seeds" in capsys.readouterr().err


def test_an_extended_design_keeps_its_finished_runs(done, tmp_path):
    out, _ = done
    grown = tmp_path / "grown"
    shutil.copytree(out, grown)
    before = {p: p.stat().st_mtime_ns for p in grown.glob("runs/*/*/run.sqlite")}
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = gensim("experiment", *ARGS[:5], "--seeds", "4", "--grid", "agents=10,16,12", *ARGS[9:],
                      "--out", str(grown))
    printed = buf.getvalue()
    assert code == 0, printed
    assert "adds seeds [4]; agents ['12']" in printed and "6 finished before, 6 to run" in printed
    assert {p: p.stat().st_mtime_ns for p in before} == before, "the finished runs are not run again"
    raw = pd.read_parquet(grown / "results.parquet")
    assert sorted(raw["cell"].unique()) == ["agents=10", "agents=12", "agents=16"]
    assert sorted(raw["seed"].unique()) == [1, 2, 3, 4]
    old = outcomes(pd.read_parquet(out / "results.parquet"))
    kept = outcomes(raw[raw["cell"].isin(["agents=10", "agents=16"]) & (raw["seed"] < 4)])
    assert kept.equals(old)
    rec = json.loads((grown / "experiment.json").read_text())
    assert rec["design"]["seeds"] == [1, 2, 3, 4] and rec["seeds_per_cell"]["agents=12"] == 4


def test_seeds_differ_and_repeat_and_the_python_api(done, tmp_path):
    out, _ = done
    a = out / "runs" / "agents=10"
    assert rows(a / "seed-1", METRICS) != rows(a / "seed-2", METRICS), "two seeds, two different runs"
    design = ExperimentDesign(scenario="polling", seeds=[1], grid={"agents": ["10"]}, rounds=3, llm="fake")
    df = run_experiment(design, tmp_path / "again", emit=lambda line: None)
    assert isinstance(df, pd.DataFrame) and set(df["seed"]) == {1}
    assert rows(tmp_path / "again" / "runs" / "agents=10" / "seed-1", METRICS) == rows(a / "seed-1", METRICS), \
        "the same seed, the same run"


def test_a_killed_experiment_rerun_ends_as_an_uninterrupted_one(done, tmp_path):
    out, _ = done
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", CLI, "experiment", *ARGS, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    try:
        while len(list(killed.glob("runs/*/*/checkpoints"))) < 2 and time.monotonic() - t0 < 120:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the experiment and the run it was doing
        proc.wait()
    assert not (killed / "results.parquet").exists(), "killed before the end"
    code, printed = experiment(killed)
    assert code == 0, printed
    assert "finished before" in printed
    got = outcomes(pd.read_parquet(killed / "results.parquet"))
    assert got.equals(outcomes(pd.read_parquet(out / "results.parquet")))


def test_dry_run_forecast_is_stored_and_compared_with_the_real_figures(tmp_path):
    out = tmp_path / "f"
    args = ["experiment", "polling", "--llm", "fake", "--rounds", "2", "--seeds", "1", "--grid", "agents=12,24",
            "--out", str(out)]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert gensim(*args, "--dry-run") == 0
    assert "forecast" in buf.getvalue() and not (out / "runs").exists(), "a pilot only"
    fc = json.loads((out / "experiment.json").read_text())["forecast"]
    assert fc["runs"] == 2 and fc["pilot"]["agents"] == 10
    # polling asks each voter once a round: (12 + 24) agents x 2 rounds
    assert fc["llm_calls"] == 72
    with redirect_stdout(io.StringIO()):
        assert gensim(*args) == 0
    err = json.loads((out / "experiment.json").read_text())["forecast_vs_actual"]
    assert err["llm_calls"] == {"forecast": 72, "actual": 72.0, "error": 0.0}
    assert err["round_wall_s"]["actual"] > 0


def test_sigterm_stops_the_running_runs_too(tmp_path):
    """SIGTERM to the experiment alone: it ends, and no run it started keeps going in the background."""
    out = tmp_path / "t"
    long = ["polling", "--llm", "fake", "--agents", "20", "--rounds", "3000", "--seeds", "2", "--out", str(out)]
    cmd = [sys.executable, "-c", CLI, "experiment", *long]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while not list(out.glob("runs/*/*/checkpoints")) and time.monotonic() - t0 < 60:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) != 0, "the run in progress is stopped, not waited for (3,000 rounds)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its session is left
    meta = dict(rows(out / "runs" / "base" / "seed-1", "SELECT key, value FROM meta"))
    # a signal during the run's setup ends it before it records "finished": unfinished either way
    assert json.loads(meta.get("finished", "false")) is False and not (out / "runs" / "base" / "seed-2").exists()


def test_an_interrupted_run_resumes_on_the_servers_the_experiment_started_now(tmp_path):
    """The shared servers of a re-run listen elsewhere than those the interrupted run recorded: its
    resume is pointed at them (run 2026-12-04: a 320-agent run resumed on the old port and failed)."""
    from simulation.experiments.run import PlannedRun, _command

    design = ExperimentDesign(scenario="job_seeking", seeds=[1], grid={"agents": ["20"]}, rounds=2)
    folder = tmp_path / "runs" / "agents=20" / "seed-1"
    (folder / "checkpoints" / "round-1").mkdir(parents=True)
    run = PlannedRun({"agents": "20"}, "agents=20", 1, folder)
    extra = [f"model_config={tmp_path / 'endpoints.json'}"]
    cmd = _command(design, run, "partial", extra)
    assert cmd[cmd.index("--resume") + 1] == str(folder) and cmd[-1] == extra[0]
    fresh = _command(design, run, "new", extra)
    assert "--resume" not in fresh and fresh[-1] == extra[0]


def test_a_misspelt_key_is_one_error_and_failed_runs_fail_the_command(tmp_path, capsys):
    # key=value settings after the options, as for gensim run; checked before any run starts
    assert gensim("experiment", "polling", "--llm", "fake", "--seeds", "2", "--out", str(tmp_path / "a"),
                  "no_such_key=1") == 2
    err = capsys.readouterr().err
    assert "no_such_key: unknown field" in err and not (tmp_path / "a").exists()
    # a run that fails when it starts (an adapter folder that is not there): listed, and the command fails
    code = gensim("experiment", "polling", "--llm", "fake", "--seeds", "2", "--rounds", "1", "--agents", "10",
                  "--out", str(tmp_path / "b"), f"llm.adapter={tmp_path / 'none'}")
    captured = capsys.readouterr()
    assert code == 1 and "2 run(s) failed" in captured.err
    assert captured.out.count("failed: runs/base/seed-") == 2 and "llm.adapter" in captured.out
