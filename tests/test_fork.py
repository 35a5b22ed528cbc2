"""Forking a run from a round: the parent is untouched, and the fork re-runs only rounds >= R."""

from __future__ import annotations

import hashlib
import json

from simulation.cli import main
from simulation.testing.procs import stub_stats
from tests.runs import ACTIONS, CALLS, METRICS, count, done, rows

NEWS = "A new factory opened in town."


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fork_replayed_from_the_parent_reproduces_its_later_rounds(stub, stub_scenario, tmp_path):
    parent, fork = tmp_path / "parent", tmp_path / "fork"
    assert main(["run", str(stub_scenario), "--agents", "60", "--rounds", "3", "--out", str(parent), "--no-progress"]) == 0
    before, asked = digest(parent / "run.sqlite"), stub_stats(stub)["chat"]
    assert main(["run", str(stub_scenario), "--fork", str(parent), "--from-round", "2", "--replay", str(parent), "--out", str(fork),
                 "--no-progress"]) == 0
    assert digest(parent / "run.sqlite") == before, "the parent is never modified"
    assert stub_stats(stub)["chat"] == asked, "a replayed fork asks no model"
    assert rows(fork) == rows(parent) and rows(fork, METRICS) == rows(parent, METRICS)
    assert rows(fork, CALLS) == rows(parent, CALLS)
    # rounds before 2 were copied, not run again: round 2 on was answered from the recording
    assert count(fork, "llm_calls", "WHERE round = 1 AND cached = 0") == count(parent, "llm_calls", "WHERE round = 1")
    assert count(fork, "llm_calls", "WHERE round >= 2 AND cached = 0") == 0
    meta = dict(rows(fork, "SELECT key, value FROM meta"))
    assert json.loads(meta["from_round"]) == 2 and json.loads(meta["parent"]) == str(parent.resolve())
    assert done(fork, 3) and not (fork / "checkpoints" / "round_000000").exists()


def test_fork_with_a_change_differs_from_the_round_it_starts(stub, stub_scenario, tmp_path, capsys):
    parent, fork = tmp_path / "parent", tmp_path / "fork"
    assert main(["run", str(stub_scenario), "--agents", "40", "--rounds", "2", "--out", str(parent), "--no-progress"]) == 0
    assert main(["run", str(stub_scenario), "--fork", str(parent), "--from-round", "2", "--intervene", f"2:{NEWS}", "llm.max_tokens=20",
                 "--out", str(fork), "--no-progress"]) == 0
    first = f"{ACTIONS.replace('ORDER BY id', 'WHERE round = 1 ORDER BY id')}"
    assert rows(fork, first) == rows(parent, first)
    prompts = [p for (p,) in rows(fork, "SELECT prompt FROM llm_calls WHERE round = 2 AND action NOT LIKE 'memory.%'")]
    assert prompts and all(NEWS in p for p in prompts)
    assert json.loads((fork / "config.json").read_text())["simulation"]["llm"]["max_tokens"] == 20
    capsys.readouterr()
    for args, field in ((["--from-round", "7"], "--from-round"), (["--from-round", "2", "--agents", "9"], "--agents"),
                        (["--from-round", "2", "agents.seeker.count=3"], "agents.seeker.count")):
        assert main(["run", str(stub_scenario), "--fork", str(parent), *args, "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
        assert field in capsys.readouterr().err
