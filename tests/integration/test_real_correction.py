"""Checks, decision health and the LLM judge on the real bundled model (job seeking, one round)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from simulation.cli import main
from tests.integration.conftest import real_scenario

pytestmark = pytest.mark.integration


def test_checks_decision_health_and_judge_on_the_real_model(real_servers, tmp_path, capsys):
    folder = real_scenario(real_servers, tmp_path)
    run = tmp_path / "run"
    assert main(["run", str(folder), "--agents", "24", "--rounds", "1", "--out", str(run), "--no-progress"]) == 0
    with sqlite3.connect(run / "run.sqlite") as db:
        metrics = dict(db.execute("SELECT name, value FROM metrics WHERE round = 1"))
    covered = {k: v for k, v in metrics.items() if k.startswith("check.") and k.endswith(".covered")}
    assert covered and sum(covered.values()) > 0, "the checks covered the round's actions"
    decisions = {k: v for k, v in metrics.items() if k.startswith("decision.") and k.endswith(".n")}
    assert decisions and all(v > 0 for v in decisions.values())
    assert any(k.endswith(".first_share") for k in metrics)
    capsys.readouterr()
    assert main(["rate", str(run), "--by", "judge", "--judge", "vllm", "--sample", "12", "--seed", "1",
                 "--scenario", str(folder)]) == 0  # a copied scenario: its rubric comes from the folder named
    with sqlite3.connect(run / "run.sqlite") as db:
        got = db.execute("SELECT r.score, r.rewrite, l.choices, l.json_schema FROM ratings r "
                         "JOIN llm_calls l ON l.id = r.llm_call_id WHERE r.rater = 'judge:vllm'").fetchall()
    assert len(got) >= 10 and all(s in (1, 2, 3, 4, 5) for s, *_ in got)
    rewrites = [(rw, c, js) for _, rw, c, js in got if rw is not None]
    assert len(rewrites) >= 10
    for rw, choices, schema in rewrites:
        if choices:
            assert rw in json.loads(choices)
        elif schema:
            json.loads(rw)
