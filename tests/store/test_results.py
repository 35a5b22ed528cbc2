"""One run's results at a glance, for every bundled scenario: the generic summary, ``gensim metrics``
(table, CSV, JSON; the scenario's key metrics first; each round's cost) and ``gensim plot``."""

from __future__ import annotations

import inspect
import io
import json
import sqlite3
from contextlib import redirect_stdout

import pandas as pd
import pytest

from simulation.config.loader import EXAMPLES_DIR
from simulation.core.scenario import load_scenario
from simulation.store.results import order_metrics, run_metrics
from tests.runs import fake_run, gensim

SCENARIOS = ("job_seeking", "recommendation", "chatting", "polling")


def printed(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = gensim(*args)
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return {s: fake_run(root / s, s, 12, 2) for s in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_metrics_of_every_scenario_key_metrics_first_with_costs(runs, scenario):
    run = runs[scenario]
    keys = load_scenario(EXAMPLES_DIR / scenario).key_metrics
    assert keys, f"{scenario} names the metrics it shows first"
    code, out = printed("metrics", str(run), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["round"] for r in rows] == [1, 2]
    with sqlite3.connect(run / "run.sqlite") as db:
        recorded = {(r, n): v for r, n, v in db.execute("SELECT round, name, value FROM metrics")}
        calls = dict(db.execute("SELECT round, COUNT(*) FROM llm_calls GROUP BY round"))
        tokens = dict(db.execute("SELECT round, SUM(prompt_tokens) FROM llm_calls GROUP BY round"))
    names = [k for k in rows[0] if k != "round" and not k.startswith("cost.")]
    present = [k for k in keys if (1, k) in recorded]
    assert present and names[:len(present)] == present, "the scenario's key metrics come first, in its order"
    assert set(names) == {n for _, n in recorded}
    for row in rows:
        r = row["round"]
        assert all(row[n] is None if (r, n) not in recorded else row[n] == pytest.approx(recorded[(r, n)])
                   for n in names)
        assert row["cost.llm_calls"] == calls.get(r, 0) and row["cost.prompt_tokens"] == (tokens.get(r) or 0)
        assert row["cost.wall_s"] > 0
    code, csv = printed("metrics", str(run), "--format", "csv")
    assert code == 0 and pd.read_csv(io.StringIO(csv), index_col="round").shape == (2, len(rows[0]) - 1)
    code, table = printed("metrics", str(run))
    assert code == 0 and table.splitlines()[0].split()[:len(present)] == present


def test_the_summary_knows_no_scenario_and_run_prints_the_metrics_table(runs, tmp_path):
    from simulation import runner

    src = inspect.getsource(runner.format_summary)
    for scenario in SCENARIOS:
        for key in load_scenario(EXAMPLES_DIR / scenario).key_metrics:
            assert key not in src, f"the framework's summary names {scenario}'s {key}"
    code, out = printed("run", "polling", "--llm", "fake", "--agents", "10", "--rounds", "2", "--out",
                        str(tmp_path / "p"), "--no-progress")
    assert code == 0
    summary, _, table = out.partition("Per-round metrics")
    assert "agents                 10" in summary and "run dir" in summary
    header = table.splitlines()[1].split()
    assert header[:4] == ["share_yes", "share_no", "share_unsure", "share_no_decision"]
    assert [line.split()[0] for line in table.splitlines()[3:5]] == ["1", "2"]


def test_plot_and_bad_metric(runs, tmp_path, capsys):
    run = runs["job_seeking"]
    code, out = printed("plot", str(run), "--metric", "employment_rate", "--metric", "check.*.fail_rate",
                        "--out", str(tmp_path / "m.png"))
    assert code == 0 and (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert gensim("plot", str(run), "--metric", "nothing_like_this*") == 2
    assert gensim("metrics", str(run), "--metric", "nothing_like_this*") == 2
    err = capsys.readouterr().err
    assert "--metric" in err and "nothing_like_this" in err and "Traceback" not in err
    assert gensim("metrics", str(tmp_path)) == 2


def test_order_and_old_runs_without_costs(runs, tmp_path):
    assert order_metrics(["b", "check.x.fail_rate", "a", "actions", "z"], ["z", "a*"]) == \
        ["z", "a", "actions", "b", "check.x.fail_rate"]
    assert order_metrics(["b", "actions", "a"]) == ["a", "b", "actions"], "the framework's own come last"
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.sqlite").write_bytes((runs["polling"] / "run.sqlite").read_bytes())
    with sqlite3.connect(old / "run.sqlite") as db:
        db.execute("DROP TABLE round_costs")
    df = run_metrics(old)
    assert len(df) == 2 and not [c for c in df.columns if c.startswith("cost.")]
