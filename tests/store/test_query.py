"""The query layer: DataFrames and pages equal to direct SQL on the recorded run, filters that filter,
seeded samples, an agent map capped at its sample size."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from simulation.runner import RunOptions, run_simulation
from simulation.store.query import CallFilter, RunQuery, _coordinates


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from simulation.testing.procs import start_stub, stub_models
    from tests.conftest import copy_scenario, set_models

    tmp = tmp_path_factory.mktemp("query")
    stub = start_stub(live=True)
    try:
        folder = copy_scenario(tmp)
        set_models(folder, stub_models([stub], embed=stub))
        out = tmp / "run"
        asyncio.run(run_simulation(RunOptions(scenario=str(folder), rounds=2, out=str(out), progress=False,
                                              interventions=[(2, "Rates went up.")])))
    finally:
        stub.stop()
    with sqlite3.connect(out / "run.sqlite") as db:
        db.execute("INSERT INTO ratings (llm_call_id, rater, score) VALUES (3, 'alice', 4), (5, 'bob', 2)")
    return out


def sql(run, q, *args):
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(q, args))


def test_metrics_status_and_events(run):
    with RunQuery(run) as rq:
        wide = rq.metrics()
        for r, name, value in sql(run, "SELECT round, name, value FROM metrics"):
            assert wide.loc[r, name] == pytest.approx(value)
        assert list(wide.index) == [1, 2]
        st = rq.status()
        assert (st.state, st.rounds_done, st.rounds, st.agents) == ("finished", 2, 2, sql(run, "SELECT COUNT(*) FROM agents")[0][0])
        ev = rq.events()
        assert list(ev["kind"]) == ["global"] and ev["round"].tolist() == [2]
        assert ev["data"][0] == {"text": "Rates went up."}


def test_agents_pages_search_and_filter(run):
    with RunQuery(run) as rq:
        everyone = [a for (a,) in sql(run, "SELECT agent_id FROM agents ORDER BY rowid")]
        p1, p2 = rq.agents(limit=7), rq.agents(offset=7, limit=7)
        assert p1.total == len(everyone) and list(p1.rows["agent_id"]) + list(p2.rows["agent_id"]) == everyone[:14]
        seekers = rq.agents(agent_type="seeker", limit=1000)
        assert seekers.total == sql(run, "SELECT COUNT(*) FROM agents WHERE agent_type = 'seeker'")[0][0]
        assert set(seekers.rows["type"]) == {"seeker"}
        one = rq.agents(search="seeker-03")
        assert list(one.rows["agent_id"]) == ["seeker-03"]
        last = sql(run, "SELECT action, round FROM actions WHERE agent_id = 'seeker-03' ORDER BY id DESC LIMIT 1")[0]
        assert (one.rows["last_action"][0], one.rows["last_round"][0]) == last
        name = json.loads(sql(run, "SELECT profile FROM agents WHERE agent_id = 'seeker-03'")[0][0])["name"]
        assert "seeker-03" in list(rq.agents(search=name[:6]).rows["agent_id"])
        detail = rq.agent("seeker-03")
        assert len(detail["calls"]) == sql(run, "SELECT COUNT(*) FROM llm_calls WHERE agent_id = 'seeker-03'")[0][0]
        with pytest.raises(KeyError, match="nobody"):
            rq.agent("nobody")


def test_calls_filters_and_seeded_samples(run):
    with RunQuery(run) as rq:
        page = rq.calls(CallFilter(round=2, action="screen"), limit=5)
        assert page.total == sql(run, "SELECT COUNT(*) FROM llm_calls WHERE round = 2 AND action = 'screen'")[0][0] > 0
        assert set(page.rows["round"]) == {2} and set(page.rows["action"]) == {"screen"} and len(page.rows) <= 5
        failed = rq.calls(CallFilter(failed_check="*"), limit=10_000)
        want = {i for (i,) in sql(run, "SELECT llm_call_id FROM check_calls WHERE ok = 0")}
        assert set(failed.rows["id"]) == want
        assert all("FAIL" in c for c in failed.rows["checks"])
        rated = rq.calls(CallFilter(rater="alice"))
        assert list(rated.rows["id"]) == [3] and rated.rows["ratings"][0] == "alice: 4"
        typed = rq.calls(CallFilter(agent_type="interviewer"), limit=10_000)
        ids = {a for (a,) in sql(run, "SELECT agent_id FROM agents WHERE agent_type = 'interviewer'")}
        assert typed.total > 0 and set(typed.rows["agent_id"]) <= ids
        a, b = rq.sample_calls(10, seed=3), rq.sample_calls(10, seed=3)
        assert list(a["id"]) == list(b["id"]) and len(a) == 10
        assert list(rq.sample_calls(10, seed=4)["id"]) != list(a["id"])
        assert rq.call(3)["id"] == 3
        for name in ("agents", "llm_calls", "checks"):
            assert len(rq.table(name)) == rq.count(name)
        with pytest.raises(ValueError, match="unknown table"):
            rq.table("meta; DROP TABLE agents")


def test_agent_map_is_capped_and_uses_own_coordinates():
    import numpy as np

    xy = _coordinates([{"x": 1, "y": 2, "name": "a"}, {"location": [3, 4]}][:1] * 2)
    assert xy.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    # profiles told apart by a category and a number are told apart on the map; a name alone does not spread them
    profs = [{"name": f"n{i}", "kind": "a" if i % 2 else "b", "age": 20 + (i % 2)} for i in range(60)]
    xy = _coordinates(profs)
    assert xy.shape == (60, 2) and np.allclose(xy[0], xy[2]) and not np.allclose(xy[0], xy[1])


def test_agent_map_sample(run):
    with RunQuery(run) as rq:
        m = rq.agent_map(max_points=5, seed=1)
        assert len(m) == 5 and m[["x", "y"]].notna().all().all()
        assert list(rq.agent_map(max_points=5, seed=1)["agent_id"]) == list(m["agent_id"])
        assert len(rq.agent_map()) == rq.count("agents")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_every_table_as_recorded(run, tmp_path, fmt):
    import csv

    import pandas as pd

    from simulation.store.query import TABLES, export_run

    files = export_run(run, tmp_path, fmt)
    assert [f.name for f in files] == [f"{t}.{fmt}" for t in TABLES]
    want = sql(run, "SELECT * FROM llm_calls")
    path = tmp_path / f"llm_calls.{fmt}"
    if fmt == "parquet":
        df = pd.read_parquet(path)
        assert [tuple(None if pd.isna(v) else v for v in r) for r in df.itertuples(index=False)] == want
        assert str(df["id"].dtype) == "int64" and str(df["latency_ms"].dtype) == "float64"
    elif fmt == "csv":
        with open(path, newline="") as f:
            got = list(csv.reader(f))[1:]
        assert got == [["" if v is None else str(v) for v in r] for r in want]
    else:
        got = [json.loads(line) for line in path.read_text().splitlines()]
        assert [tuple(d.values()) for d in got] == want
    with pytest.raises(ValueError, match="--format"):
        export_run(run, tmp_path, "xlsx")


def test_an_agent_s_state_and_memory_at_the_last_checkpoint(run, tmp_path):
    """Read from the last whole checkpoint (round 2): the short-term memory holds what the agent
    remembered, in rounds up to 2; a half-written newer checkpoint is passed over."""
    import shutil

    from simulation.core.checkpoint import read_msgpack

    agent = sql(run, "SELECT agent_id FROM agents WHERE agent_type = 'seeker' ORDER BY agent_id LIMIT 1")[0][0]
    with RunQuery(run) as rq:
        got = rq.agent_memory(agent)
        assert rq.agent_memory("nobody") == {}
    raw = {}
    for f in sorted((run / "checkpoints" / "round_000002").glob("group_*.msgpack")):
        raw.update(read_msgpack(f)["agents"])
    assert got["checkpoint_round"] == 2 and got["state"] == raw[agent]["state"]
    assert [(m["text"], m["round"]) for m in got["short_term"]] == [tuple(x) for x in raw[agent]["memory"]["short"]]
    assert got["short_term"] and all(m["round"] <= 2 for m in got["short_term"])
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    broken = copy / "checkpoints" / "round_000003"
    broken.mkdir()
    (broken / "group_0000.msgpack").write_bytes(b"\x00")  # no driver file: not a whole checkpoint
    with RunQuery(copy) as rq:
        assert rq.agent_memory(agent)["checkpoint_round"] == 2
