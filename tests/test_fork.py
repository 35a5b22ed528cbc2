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


def _fake_run(tmp_path, name="parent", rounds=3):
    run = tmp_path / name
    assert main(["run", "polling", "--llm", "fake", "--agents", "6", "--rounds", str(rounds), "--out", str(run),
                 "--no-progress", "--intervene", "3:Rain tomorrow"]) == 0
    return run


def test_forked_config_changes_only_what_it_may(tmp_path):
    import pytest

    from simulation.config import ConfigError
    from simulation.fork import forked_config
    from simulation.runner import read_run_config

    parent = read_run_config(_fake_run(tmp_path))
    cfg = forked_config(parent, ["llm.temperature=0.5", "memory.retrieve_k=7", "scenario.question=Why?"], 99)
    assert cfg.simulation.llm.temperature == 0.5 and cfg.memory.retrieve_k == 7 and cfg.simulation.seed == 99
    assert cfg.simulation.scenario["question"] == "Why?" and cfg.simulation.agents == parent.simulation.agents
    assert forked_config(parent, [], None).simulation.seed == parent.simulation.seed
    assert parent.simulation.llm.temperature == 0.0 and parent.memory.retrieve_k != 7, "the parent's config is untouched"
    for key in ("agents.voter.count=3", "name=other", "scenario_dir=/x"):
        with pytest.raises(ConfigError, match="keeps its parent's population and scenario"):
            forked_config(parent, [key], None)
    with pytest.raises(ConfigError) as e:
        forked_config(parent, ["llm.temperature=hot"], None)
    assert "llm.temperature" in str(e.value) and "<command line>" in str(e.value)


def test_make_fork_copies_records_before_the_round_and_nothing_after(tmp_path):
    import pytest

    from simulation.config import ConfigError
    from simulation.fork import make_fork
    from simulation.runner import read_run_config

    parent = _fake_run(tmp_path)
    assert main(["rate", str(parent), "--by", "file", "--file", str(_ratings(parent, tmp_path))]) == 0
    cfg = read_run_config(parent)
    before = digest(parent / "run.sqlite")
    out = make_fork(parent, 3, tmp_path / "f", cfg, replay=False, plan=[{"round": 3, "kind": "global"}])
    assert digest(parent / "run.sqlite") == before
    assert rows(out, "SELECT DISTINCT round FROM actions ORDER BY round") == [(1,), (2,)]
    assert rows(out, "SELECT COUNT(*) FROM llm_calls WHERE round >= 3") == [(0,)]
    assert rows(out, "SELECT COUNT(*) FROM metrics WHERE round >= 3") == [(0,)]
    assert rows(out, "SELECT COUNT(*) FROM round_costs WHERE round >= 3") == [(0,)]
    assert rows(out, "SELECT COUNT(*) FROM round_costs") == [(2,)]
    from simulation.store.query import RunQuery

    with RunQuery(out) as rq:
        ev = rq.events()
    forked = ev[ev["kind"] == "forked"]
    assert len(forked) == 1 and forked["round"].iloc[0] == 3
    assert forked["data"].iloc[0] == {"parent": str(parent.resolve()), "from_round": 3, "replay": False}
    assert rows(out, "SELECT COUNT(*) FROM interventions WHERE round >= 3") == [(0,)]
    kept = rows(out, "SELECT l.round FROM ratings r JOIN llm_calls l ON l.id = r.llm_call_id")
    assert kept and {r for (r,) in kept} <= {1, 2} and rows(out, "SELECT COUNT(*) FROM ratings")[0][0] == len(kept)
    meta = dict(rows(out, "SELECT key, value FROM meta"))
    assert json.loads(meta["parent"]) == str(parent.resolve()) and json.loads(meta["from_round"]) == 3
    assert json.loads(meta["replay_from"]) is None and json.loads(meta["schedule"]) == [{"round": 3, "kind": "global"}]
    assert json.loads(meta["seed"]) == cfg.simulation.seed and "finished" not in meta and "summary" not in meta
    assert done(out, 2) and not done(out, 3) and not (out / "checkpoints" / "round_000001").exists()
    assert json.loads((out / "config.json").read_text())["simulation"]["seed"] == cfg.simulation.seed
    replayed = make_fork(parent, 2, tmp_path / "r", cfg, replay=True)
    meta = dict(rows(replayed, "SELECT key, value FROM meta"))
    assert json.loads(meta["replay_from"]) == str(parent.resolve()) and json.loads(meta["schedule"]) == []
    for r, field in ((0, "rounds are numbered from 1"), (5, "no complete checkpoint of round 4")):
        with pytest.raises(ConfigError, match=field):
            make_fork(parent, r, tmp_path / f"bad{r}", cfg, replay=False)
        assert not (tmp_path / f"bad{r}").exists()
    with pytest.raises(ConfigError, match="already holds a run"):
        make_fork(parent, 2, out, cfg, replay=False)


def _ratings(run, tmp_path):
    ids = [i for (i,) in rows(run, "SELECT id FROM llm_calls WHERE action = 'vote' ORDER BY id")]
    f = tmp_path / "r.jsonl"
    f.write_text("".join(json.dumps({"llm_call_id": i, "score": 3}) + "\n" for i in ids))
    return f


def test_fork_errors_name_file_and_field_and_round_one_is_allowed(tmp_path):
    import pytest

    from simulation.config import ConfigError
    from simulation.fork import forked_config, make_fork
    from simulation.runner import read_run_config

    parent = _fake_run(tmp_path)
    cfg = read_run_config(parent)

    def problem(fn, *args, **kw):
        with pytest.raises(ConfigError) as e:
            fn(*args, **kw)
        return [(p.file, p.field, p.reason) for p in e.value.problems]

    assert problem(make_fork, parent, 0, tmp_path / "x", cfg, False) == [
        ("<command line>", "--from-round", "rounds are numbered from 1")]
    assert problem(make_fork, parent, 5, tmp_path / "x", cfg, False) == [
        (str(parent), "--from-round", "the parent has no complete checkpoint of round 4")]
    assert problem(forked_config, cfg, ["agents.voter.count=2"], None) == [
        ("<command line>", "agents.voter.count", "a fork keeps its parent's population and scenario")]
    assert problem(forked_config, cfg, ["rounds=0"], None)[0][0] == "<command line>"
    # from round 1: the checkpoint of round 0 (after setup); into a nested folder that exists but holds no run
    out = tmp_path / "deep" / "er" / "f"
    out.mkdir(parents=True)
    assert make_fork(parent, 1, out, cfg, replay=False) == out and done(out, 0)
    assert rows(out, "SELECT COUNT(*) FROM actions") == [(0,)]
    text = (out / "config.json").read_text()
    assert '\n  "simulation": {' in text and '"model_config": ' in text, "indented, with the config's own names"
    assert problem(make_fork, parent, 1, out, cfg, False) == [(str(out), "--out", "already holds a run; use another folder")]
    nested = make_fork(parent, 2, tmp_path / "new" / "deeper" / "g", cfg, replay=False)
    assert done(nested, 1)
