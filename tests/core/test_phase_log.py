"""The per-phase log line counts every LLM call the phase recorded, including rows drained mid-phase."""

from __future__ import annotations

import re
import sqlite3

from simulation.cli import main
from simulation.core.simulator import Simulator


def test_phase_log_counts_the_calls_drained_while_the_phase_ran(tmp_path, monkeypatch):
    # drain the groups' rows continuously, so most of them reach the store before the phase ends
    monkeypatch.setattr(Simulator._collect_rows, "__defaults__", (0.001,))
    run = tmp_path / "run"
    assert main(["run", "job_seeking", "--llm", "fake", "--agents", "24", "--rounds", "2", "--out", str(run),
                 "--no-progress"]) == 0
    logged = {(int(r), p): int(n) for r, p, n in
              re.findall(r"round (\d+) phase (\w+): \d+ steps, \d+ actions, (\d+) LLM calls", (run / "run.log").read_text())}
    with sqlite3.connect(run / "run.sqlite") as db:
        recorded = {(r, p): n for r, p, n in db.execute("SELECT round, phase, COUNT(*) FROM llm_calls GROUP BY round, phase")}
    assert sum(recorded.values()) > 100 and logged  # both sides have something to compare
    assert {k: v for k, v in logged.items() if v} == recorded
