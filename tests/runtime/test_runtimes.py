"""The runtime contract, run against both runtimes, and the Ray runtime's crash recovery.

A run is recorded once with the stub server; each runtime then replays it. Replays answer every LLM
and embedding call from the recording, so any difference in actions or metrics is the runtime's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from simulation.cli import main
from simulation.config.models import RunConfig
from simulation.core.checkpoint import read_msgpack, round_dir
from simulation.runner import RunOptions, run_simulation
from simulation.runtime import GroupHost, GroupSpec, make_runtime
from simulation.runtime.base import GroupCall
from simulation.testing.procs import start_stub, stub_models, stub_stats
from tests.conftest import copy_scenario, set_models
from tests.runs import CALLS, METRICS, duplicates, normalised, rows

RUNTIMES = ["local", "ray"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A 240-agent, 3-round job-seeking run against the stub, on the local runtime."""
    tmp = tmp_path_factory.mktemp("recorded")
    stub = start_stub(live=True)
    try:
        folder = copy_scenario(tmp)
        set_models(folder, stub_models([stub], embed=stub))
        rec = tmp / "rec"
        assert main(["run", str(folder), "--agents", "240", "--rounds", "3", "--out", str(rec), "--no-progress"]) == 0
    finally:
        stub.stop()
    return rec


def replay(rec: Path, out: Path, runtime: str, **hooks) -> dict:
    opts = RunOptions(scenario=str(rec.parent / "job_seeking"), replay=str(rec), out=str(out), runtime=runtime,
                      overrides=["servers=2"], progress=False,
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
    group_of = {a: i % 2 for i, (a, _, _) in enumerate(agents)}
    ids = [a for a, _, _ in agents]

    async def go() -> tuple[list, list, dict, dict]:

        rt = make_runtime(runtime, servers=2)
        assert rt.connect() == 2
        try:
            await rt.start(specs)
            calls = [GroupCall(i % 2, GroupHost.add_agents, (t, [(a, json.loads(p))]))
                     for i, (a, t, p) in enumerate(agents)]
            await rt.gather(calls)
            stats = await rt.broadcast(GroupHost.stats)
            # the recorded run's last checkpoint (memories, applications, employment), then an intervention
            await rt.broadcast(GroupHost.restore, str(round_dir(recorded, 3)))
            await rt.call(group_of["seeker-001"], GroupHost.set_attribute, "seeker-001", "traits.trust", "Very Low")
            loaded = dict(zip(ids, await rt.gather([GroupCall(group_of[a], GroupHost.agent_state, (a,)) for a in ids]),
                              strict=True))
            d = tmp_path / "ck" / "round_000000"
            d.mkdir(parents=True)
            sizes = await rt.broadcast(GroupHost.checkpoint, str(d))
            await rt.replace(1, specs[1])  # a fresh, empty host takes group 1's place
            assert (await rt.call(1, GroupHost.stats))["agents"] == 0
            mine = [(a, t, p) for a, t, p in agents if group_of[a] == 1]
            for agent_type in ("seeker", "interviewer"):
                await rt.call(1, GroupHost.add_agents, agent_type, [(a, json.loads(p)) for a, t, p in mine if t == agent_type])
            restored = await rt.call(1, GroupHost.restore, str(d))
            back = dict(zip([a for a, _, _ in mine],
                            await rt.gather([GroupCall(1, GroupHost.agent_state, (a,)) for a, _, _ in mine]), strict=True))
            return stats, [sizes, restored], loaded, back
        finally:
            await rt.close()

    stats, (sizes, restored), loaded, back = asyncio.run(go())
    assert [s["agents"] for s in stats] == [120, 120] and all(n > 0 for n in sizes)
    assert restored == sum(1 for a in ids if group_of[a] == 1)
    files = sorted(p.name for p in (tmp_path / "ck" / "round_000000").iterdir())
    assert files == ["group_0000.msgpack", "group_0001.msgpack"]
    final = read_msgpack(round_dir(recorded, 3) / "group_0000.msgpack")["agents"]
    # restoring the recorded checkpoint gave every agent its recorded state ...
    assert {a: {k: v for k, v in s.items() if k != "profile"} for a, s in loaded.items() if a != "seeker-001"} == \
        {a: final[a] for a in ids if a != "seeker-001"}
    assert any(s["state"].get("job") for s in loaded.values()), "the recorded states are not the initial ones"
    assert loaded["seeker-001"]["patch"] == {"traits.trust": "Very Low"}
    # ... and a new host restored from our own checkpoint holds exactly what was written
    assert back == {a: loaded[a] for a in back}


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



def test_ray_group_killed_mid_phase_of_a_live_run(stub, tmp_path):
    """A live run on Ray loses an agent server in the middle of round 2's screening, after an
    intervention: the change survives, no call is lost or made twice, and the run ends as a
    crash-free one does (tags aside).

    The stub's gate lets fewer calls through than either group makes in that phase, so neither can
    finish it; once the driver holds every answered row, a group that had answers is killed.
    """
    folder = copy_scenario(tmp_path)
    set_models(folder, stub_models([stub], embed=stub))
    base = f"{stub.base_url.removesuffix('/v1')}"
    targets: dict[int, str] = {}  # group -> a seeker of it whose profile is changed in round 2
    killed: list[tuple[int, int]] = []  # (group, its rows of the phase when it died)
    plan: dict = {}
    tasks: list = []

    async def intervene(sim, r):
        if r == 2:
            for g in (0, 1):
                if g not in targets:  # a seeker still looking, so it has prompts after the kill
                    seekers = [a for a, h in sorted(sim.where.items()) if h == g and a.startswith("seeker")]
                    looking = [a for a in seekers if (await sim.agent_state(a))["state"]["job"] is None]
                    targets[g] = looking[0]
                await sim.set_attribute(targets[g], "desired_salary", 987654)

    def phase_rows(sim, g: int | None = None) -> int:
        mine = "" if g is None else f" AND agent_id IN (SELECT agent_id FROM agents WHERE grp = {g})"
        return sim.store.count("llm_calls", "WHERE round = 2 AND phase = 'screen'" + mine)

    async def kill_when_screening(sim, r, phase):
        if r != 2 or phase.name != "screen" or runtime_of(sim) != "ray":
            return
        answered = plan["answered"]
        httpx.post(f"{base}/hold", json={"after": stub_stats(stub)["chat"] + answered})

        async def killer():
            try:
                for _ in range(1200):
                    if stub_stats(stub)["held"]:
                        break
                    await asyncio.sleep(0.05)
                else:
                    return  # the phase never reached the gate: the test fails on `killed`
                # no group can finish the phase, so every answered row reaches the driver's store
                for _ in range(1200):
                    if phase_rows(sim) >= answered:
                        break
                    await asyncio.sleep(0.05)
                else:
                    return
                victim = max((0, 1), key=lambda g: phase_rows(sim, g))
                killed.append((victim, phase_rows(sim, victim)))
                os.kill(sim.groups[victim]["pid"], signal.SIGKILL)
                await asyncio.sleep(1.0)  # its parked calls' connections are closed by then
            finally:
                httpx.post(f"{base}/release")

        tasks.append(asyncio.ensure_future(killer()))

    def run(out: Path, runtime: str) -> tuple[dict, int]:
        before = stub_stats(stub)["chat"]
        opts = RunOptions(scenario=str(folder), agents=240, rounds=3, out=str(out), runtime=runtime,
                          overrides=["servers=2"], progress=False,
                          hooks={"before_round": [intervene], "before_phase": [kill_when_screening]})
        summary = asyncio.run(run_simulation(opts))
        return summary, stub_stats(stub)["chat"] - before

    calm, calm_calls = run(tmp_path / "calm", "local")
    # both runs take the same path: the calm one tells how many calls each group makes in that phase
    per_group = rows(tmp_path / "calm", "SELECT a.grp, COUNT(*) FROM llm_calls l JOIN agents a USING (agent_id) "
                                        "WHERE l.round = 2 AND l.phase = 'screen' GROUP BY a.grp")
    plan["answered"] = min(n for _, n in per_group) - 20
    assert len(per_group) == 2 and plan["answered"] > 20
    crash, crash_calls = run(tmp_path / "crash", "ray")
    assert killed and killed[0][1] > 0, "the killed group had answered screenings before it died"
    victim = killed[0][0]
    assert crash.get("recovered_groups") == 1 and crash["failed_steps"] == calm["failed_steps"] == 0
    assert crash_calls == calm_calls, "every call was made once: none again after the rebuild"
    a, b = tmp_path / "crash", tmp_path / "calm"
    assert not duplicates(a)
    assert normalised(rows(a)) == normalised(rows(b))
    assert rows(a, METRICS) == rows(b, METRICS)
    assert normalised(rows(a, CALLS)) == normalised(rows(b, CALLS))
    # the intervention reached the rebuilt group: the target's prompts carry it from round 2 on
    own = rows(a, "SELECT round, prompt FROM llm_calls WHERE agent_id = ? AND round >= 2 "
                  "AND action NOT LIKE 'memory.%'", targets[victim])  # memory prompts are the framework's
    assert {r for r, _ in own} == {2, 3} and all("987654" in p for _, p in own)
    state = read_msgpack(round_dir(a, 3) / f"group_{victim:04d}.msgpack")["agents"][targets[victim]]
    assert state["patch"] == {"desired_salary": 987654}


def runtime_of(sim) -> str:
    return sim.runtime.name

