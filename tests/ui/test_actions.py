"""The page's actions without a browser: settings as overrides, inline checks, profile uploads, ratings
validated as the CLI validates them, datasets, and paths kept inside the served folders."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pandas as pd
import pytest

from simulation.runner import RunOptions, run_simulation
from simulation.ui.actions import UIContext
from simulation.ui.security import UIError


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    runs = tmp_path_factory.mktemp("actions") / "runs"
    asyncio.run(run_simulation(RunOptions(scenario="job_seeking", agents=20, rounds=2, out=str(runs / "r"),
                                          progress=False, overrides=["llm.backend=fake"])))
    return UIContext(runs)


def q(ctx, sql, *args):
    with sqlite3.connect(ctx.runs_dir / "r" / "run.sqlite") as db:
        return list(db.execute(sql, args))


def test_settings_become_overrides_and_checks_show_problems(ctx):
    df = ctx.settings("job_seeking")
    keys = dict(df.itertuples(index=False))
    assert keys["rounds"] and "agents.seeker.count" in keys and any(k.startswith("memory.") for k in keys)
    assert ctx.overrides("job_seeking", df) == []
    edited = df.copy()
    edited.loc[edited["setting"] == "rounds", "value"] = "many"
    assert ctx.overrides("job_seeking", edited) == ["rounds=many"]
    report = ctx.check("job_seeking", edited)
    assert report.startswith("problems:") and "rounds" in report
    edited.loc[edited["setting"] == "rounds", "value"] = "4"
    assert ctx.check("job_seeking", edited).splitlines()[-1].startswith("ok: job_seeking")


def test_profile_upload_is_read_by_the_importer_before_it_is_kept(ctx, tmp_path):
    good = tmp_path / "seekers.json"
    good.write_text(json.dumps([{"class": "SeekerAgent", "args": {
        "name": f"S {i}", "cv": {"Education": "BA", "Work Experience": [], "Skills": ["Excel"]},
        "trait": {"Age": 30, "Gender": "Female", "Hobby": "chess"}}} for i in range(3)]))
    report, override = ctx.import_profiles("job_seeking", "seeker", good)
    assert report.startswith("seeker: 3 profiles read from seekers.json") and "trait.Hobby" in report
    assert override == f"agents.seeker.profiles={ctx.runs_dir / 'uploads' / 'seekers.json'}"
    bad = tmp_path / "broken.json"
    bad.write_text('[{"class": "SeekerAgent", "args": {"name": 3}}]')
    with pytest.raises(UIError, match="broken.json"):
        ctx.import_profiles("job_seeking", "seeker", bad)
    assert not (ctx.runs_dir / "uploads" / "broken.json").exists()
    script = tmp_path / "x.sh"
    script.write_text("echo hi")
    with pytest.raises(UIError, match="profile file"):
        ctx.import_profiles("job_seeking", "seeker", script)


def test_ratings_are_validated_and_replace_the_raters_own(ctx):
    cid, choices = next((i, json.loads(c)) for i, c in q(ctx, "SELECT id, choices FROM llm_calls WHERE choices IS NOT NULL"))
    with pytest.raises(UIError, match="between 1 and 5"):
        ctx.rate("r", cid, "ada", 7, None)
    with pytest.raises(UIError, match="one of the call's options"):
        ctx.rate("r", cid, "ada", 2, "not an option")
    with pytest.raises(UIError, match="rater"):
        ctx.rate("r", cid, "checks", 2, None)
    with pytest.raises(UIError, match="no such LLM call"):
        ctx.rate("r", 10**9, "ada", 2, None)
    assert ctx.rate("r", cid, "ada", 2, choices[-1]).startswith(f"call {cid} rated by ada: 2")
    assert ctx.rate("r", cid, "ada", 5, None)
    assert q(ctx, "SELECT score, rewrite FROM ratings WHERE rater = 'ada'") == [(5.0, None)]
    msg = ctx.rate_by_checks("r")
    n = int(msg.split()[2])
    assert n == q(ctx, "SELECT COUNT(*) FROM ratings WHERE rater LIKE 'check:%'")[0][0] > 0
    path, rows = ctx.export_dataset("r", "sft")
    assert path.is_file() and rows == len(path.read_text().splitlines()) > 0


def test_paths_stay_inside_the_runs_folder(ctx):
    for bad in ("../x", "/etc", "r/../../x"):
        with pytest.raises(UIError):
            ctx.run_dir(bad)
    with pytest.raises(UIError, match="not a run folder"):
        ctx.run_dir("uploads")
    with pytest.raises(UIError):
        ctx.train("../../etc/passwd", "a")
    with pytest.raises(UIError):
        ctx.start("job_seeking", None, "../outside")
    with pytest.raises(UIError, match="scenario"):
        ctx.settings("/etc")
    runs = ctx.runs()
    assert list(runs["run"]) == ["r"] and runs["state"][0] == "finished"
    long = ctx.metrics_long(["r"], ["check.*.fail_rate"])
    assert len(long) and set(long["metric"]) <= {m for (m,) in q(ctx, "SELECT DISTINCT name FROM metrics")}
    assert all(m.startswith("check.") and m.endswith(".fail_rate") for m in long["metric"])
    assert isinstance(long, pd.DataFrame)


def test_replay_from_the_page_reproduces_the_run(ctx):
    out = ctx.replay("r", "r-replay")
    st = ctx.controller.wait(120)
    assert st.state == "finished", st.error
    with sqlite3.connect(out / "run.sqlite") as db:
        again = list(db.execute("SELECT round, agent_id, action, data FROM actions ORDER BY id"))
    assert again == q(ctx, "SELECT round, agent_id, action, data FROM actions ORDER BY id")


def test_training_runs_in_the_background_and_can_be_cancelled(ctx, monkeypatch):
    """The page's training is a job: steps and losses reach it, a cancel stops it with no adapter, a
    second one is refused while one runs, and bad requests are refused before anything starts."""
    import simulation.training as training
    from simulation.training import TrainingCancelled

    seen: dict = {}

    def fake_train(method, data, out, epochs=1.0, learning_rate=None, progress=True, max_samples=None, watch=None,
                   objective="tokens"):
        seen.update(method=method, lr=learning_rate, max_samples=max_samples, progress=progress, objective=objective)
        for step in range(1, 10_000):
            watch.on_step(step, 10_000)
            watch.on_loss(step, 1.0 / step)
            if watch.cancelled():
                raise TrainingCancelled(f"cancelled at step {step} of 10000")
            time.sleep(0.005)

    monkeypatch.setattr(training, "train", fake_train)
    (ctx.runs_dir / "r" / "datasets").mkdir(exist_ok=True)
    data = ctx.runs_dir / "r" / "datasets" / "d.jsonl"
    data.write_text("{}\n")
    job = ctx.train("r/datasets/d.jsonl", "cancelme", 1, 0.01, 5, "ppo")
    while job.status().step < 3:
        time.sleep(0.01)
    with pytest.raises(UIError, match="already running"):
        ctx.train("r/datasets/d.jsonl", "other")
    job.cancel()
    st = job.wait(10)
    assert st.state == "cancelled" and "cancelled at step" in st.error and st.losses[0] == (1, 1.0)
    assert seen == {"method": "ppo", "lr": 0.01, "max_samples": 5, "progress": False, "objective": "tokens"}
    job = ctx.train("r/datasets/d.jsonl", "choice", 1, None, None, "sft", "choices")
    while job.status().step < 1:
        time.sleep(0.01)
    job.cancel()
    job.wait(10)
    assert seen["objective"] == "choices" and seen["method"] == "sft", "the page's loss choice reaches training"
    assert not (ctx.runs_dir / "adapters" / "cancelme").exists()
    for args, says in ((("r/datasets/none.jsonl", "a"), "no such file"), (("r/datasets/d.jsonl", " "), "adapter name"),
                       (("r/datasets/d.jsonl", "a", 1, None, None, "dpo"), "method"),
                       (("r/datasets/d.jsonl", "a", 1, None, None, "ppo", "choices"), "loss")):
        with pytest.raises(UIError, match=says):
            ctx.train(*args)


def test_the_correction_loop_and_the_judge_from_the_page(ctx, monkeypatch):
    """``gensim correct`` as a job (training stood in for): its lines arrive, its report becomes the
    iteration and exam tables with the report's own figures; the judge rates a seeded sample."""
    import simulation.correction.loop as loop
    from simulation.ui.actions import correction_tables
    from tests.runs import fake_run, stand_in_training

    monkeypatch.setattr(loop, "train", stand_in_training)
    fake_run(ctx.runs_dir / "base", "job_seeking", 20, 2)
    job = ctx.correct("job_seeking", "base", "loop1", iterations=1)
    st = job.wait(300)
    assert st.state == "done", st.error
    assert any("exam" in line for line in st.lines)
    assert ctx.correction_loops() == ["loop1"]
    report = ctx.correction_report("loop1")
    its, exam = correction_tables(report)
    it = report["iterations"][0]
    assert list(its["iteration"]) == [1] and its["held-out fail"][0] == it["holdout_fail"]
    assert its["control fail"][0] == it["control_fail"] and bool(its["adopted"][0]) == it["adopted"]
    assert its["held-out fail (base)"][0] == report["base_holdout_fail"]
    ba = it["exam"]["balanced_accuracy"]
    assert sorted(exam["decision"]) == sorted(ba)
    for row in exam.itertuples():
        assert [row.base, row.adapter] == ba[row.decision][:2]
    with pytest.raises(UIError, match="already exists"):
        ctx.correct("job_seeking", "base", "loop1")
    with pytest.raises(UIError, match="no correction.json"):
        ctx.correction_report("base")
    # a finished loop gone on with: each iteration kept as measured, nothing trained again
    monkeypatch.setattr(loop, "train", None)
    st = ctx.resume_correction("loop1").wait(300)
    assert st.state == "done", st.error
    assert any(line.startswith("iteration 1: measured before the loop stopped") for line in st.lines), st.lines
    assert ctx.correction_report("loop1")["iterations"] == report["iterations"]
    with pytest.raises(UIError, match="^base: --resume: no loop.json"):
        ctx.resume_correction("base")
    with pytest.raises(UIError, match="name the stopped loop"):
        ctx.resume_correction(" ")
    before = q(ctx, "SELECT COUNT(*) FROM ratings WHERE rater LIKE 'judge%'")[0][0]
    line = ctx.judge("r", sample=5, seed=1)
    assert line.startswith("judge rated 5 calls")
    assert q(ctx, "SELECT COUNT(DISTINCT llm_call_id) FROM ratings WHERE rater LIKE 'judge%'")[0][0] == before + 5


def test_an_experiment_s_last_round_table_and_series(ctx):
    from simulation.experiments import ExperimentDesign, run_experiment

    design = ExperimentDesign(scenario="polling", seeds=[1, 2], grid={"agents": ["10", "12"]}, rounds=2, llm="fake",
                              baseline={"agents": "10"})
    raw = run_experiment(design, ctx.runs_dir / "exp1", emit=lambda line: None)
    assert ctx.experiments() == ["exp1"]
    table, series = ctx.experiment_summary("exp1", "share_yes")
    assert sorted(table["cell"]) == ["agents=10", "agents=12"] and set(table["round"]) == {2}
    for row in table.itertuples():
        v = raw[(raw["cell"] == row.cell) & (raw["round"] == 2) & (raw["metric"] == "share_yes")]["value"]
        assert row.mean == pytest.approx(v.mean(), abs=1e-4) and row.n == 2
    assert table.set_index("cell").loc["agents=10", "diff"] == 0
    assert len(series) == 4 and set(series["series"]) == {"agents=10 share_yes", "agents=12 share_yes"}
    with pytest.raises(UIError, match="nothing in exp1"):
        ctx.experiment_summary("exp1", "no_such_metric")
    with pytest.raises(UIError):
        ctx.experiment_summary("../elsewhere")
