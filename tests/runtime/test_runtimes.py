"""The runtime contract, run against both runtimes, and the Ray runtime's crash recovery.

A run is recorded once with the stub server; each runtime then replays it. Replays answer every LLM
and embedding call from the recording, so any difference in actions or metrics is the runtime's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.config.models import RunConfig
from simulation.core.checkpoint import read_msgpack, round_dir
from simulation.runner import RunOptions, run_simulation
from simulation.runtime import GroupSpec, make_runtime
from simulation.testing.procs import start_stub, stub_models
from tests.conftest import copy_scenario, set_models

ACTIONS = "SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id"
METRICS = "SELECT round, name, value FROM metrics ORDER BY round, name"
RUNTIMES = ["local", "ray"]


def rows(run: Path, q: str = ACTIONS) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(q))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A 240-agent, 3-round job-seeking run against the stub, on the local runtime."""
    tmp = tmp_path_factory.mktemp("recorded")
    stub = start_stub()
    try:
        folder = copy_scenario(tmp)
        set_models(folder, stub_models([stub], embed=stub))
        rec = tmp / "rec"
        assert main(["run", str(folder), "--agents", "240", "--rounds", "3", "--out", str(rec), "--no-progress"]) == 0
    finally:
        stub.stop()
    return rec


def replay(rec: Path, out: Path, runtime: str, **hooks) -> dict:
    opts = RunOptions(replay=str(rec), out=str(out), runtime=runtime, overrides=["servers=2"], progress=False,
                      hooks={k: [v] for k, v in hooks.items()})
    return asyncio.run(run_simulation(opts))


def test_local_and_ray_replays_are_identical(recorded, tmp_path):
    local, ray_ = tmp_path / "local", tmp_path / "ray"
    a, b = replay(recorded, local, "local"), replay(recorded, ray_, "ray")
    assert a["failed_steps"] == b["failed_steps"] == 0
    assert rows(local) == rows(ray_) == rows(recorded)
    assert rows(local, METRICS) == rows(ray_, METRICS) == rows(recorded, METRICS)
    for run in (local, ray_):  # two groups, every agent type on both
        per_group = rows(run, "SELECT grp, agent_type, COUNT(*) FROM agents GROUP BY grp, agent_type")
        assert {(g, t) for g, t, _ in per_group} == {(0, "seeker"), (1, "seeker"), (0, "interviewer"),
                                                     (1, "interviewer")}
    assert rows(recorded, "SELECT COUNT(*) FROM actions WHERE action = 'apply'")[0][0] > 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_contract_bulk_create_checkpoint_restore(recorded, tmp_path, runtime):
    """Both runtimes: bulk creation over groups, per-group checkpoints, restore into new hosts."""
    cfg = RunConfig.model_validate_json((recorded / "config.json").read_text())
    specs = [GroupSpec(i, cfg.model_dump_json(by_alias=True), replay_from=str(recorded)) for i in range(2)]
    agents = rows(recorded, "SELECT agent_id, agent_type, profile FROM agents ORDER BY agent_id")

    async def go() -> tuple[list, list]:
        import json

        rt = make_runtime(runtime, servers=2)
        assert rt.connect() == 2
        try:
            await rt.start(specs)
            calls = [(i % 2, "add_agents", (t, [(a, json.loads(p))])) for i, (a, t, p) in enumerate(agents)]
            await rt.gather(calls)
            stats = await rt.broadcast("stats")
            d = tmp_path / "ck" / "round_000000"
            d.mkdir(parents=True)
            sizes = await rt.broadcast("checkpoint", str(d))
            await rt.replace(1, specs[1])  # a fresh, empty host takes group 1's place
            assert (await rt.call(1, "stats"))["agents"] == 0
            await rt.call(1, "add_agents", "seeker", [(a, json.loads(p)) for i, (a, t, p) in enumerate(agents)
                                                     if i % 2 == 1 and t == "seeker"])
            restored = await rt.call(1, "restore", str(d))
            return stats, [sizes, restored]
        finally:
            await rt.close()

    stats, (sizes, restored) = asyncio.run(go())
    assert [s["agents"] for s in stats] == [120, 120] and all(n > 0 for n in sizes)
    seekers_1 = sum(1 for i, (_, t, _) in enumerate(agents) if i % 2 == 1 and t == "seeker")
    assert restored == seekers_1
    files = sorted(p.name for p in (tmp_path / "ck" / "round_000000").iterdir())
    assert files == ["group_0000.msgpack", "group_0001.msgpack"]


def test_ray_group_killed_mid_round_recovers_exactly(recorded, tmp_path):
    """SIGKILL one agent server in the middle of round 2: the run completes, actions as recorded."""
    killed: list[int] = []

    async def kill(sim, r, phase):
        if r == 2 and phase.name == "screen" and not killed:
            pid = sim.groups[1]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out = tmp_path / "crash"
    summary = replay(recorded, out, "ray", before_phase=kill)
    assert killed and summary["failed_steps"] == 0 and summary.get("recovered_groups") == 1
    assert rows(out) == rows(recorded)
    assert rows(out, METRICS) == rows(recorded, METRICS)
    final = {**read_msgpack(round_dir(out, 3) / "group_0000.msgpack")["agents"],
             **read_msgpack(round_dir(out, 3) / "group_0001.msgpack")["agents"]}
    assert len(final) == 240

