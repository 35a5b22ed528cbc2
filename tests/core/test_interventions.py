"""Interventions and interviews, from Python and from the command line, recorded in the run store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from simulation.cli import main
from simulation.runner import RunOptions, run_simulation

NEWS = "The central bank doubled interest rates overnight."


def q(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(sql))


def test_intervention_reaches_next_round_then_is_cleared_and_interview_leaves_memory(stub_scenario, tmp_path):
    seen: dict[str, dict] = {}

    async def before(sim, r):
        if r == 2:
            sim.set_intervention(NEWS)
            await sim.set_attribute("seeker-02", "desired_salary", 123457)
        if r == 3:
            sim.set_intervention(None)

    async def after(sim, r):
        if r == 2:
            seen["before"] = await sim.agent_state("seeker-01")
            seen["answer"] = await sim.interview("seeker-01", "How do you feel about your job search?")
            seen["after"] = await sim.agent_state("seeker-01")

    run = tmp_path / "run"
    opts = RunOptions(scenario=str(stub_scenario), rounds=3, out=str(run), progress=False,
                      hooks={"before_round": [before], "after_round": [after]})
    summary = asyncio.run(run_simulation(opts))
    assert summary["failed_steps"] == 0
    # the agents' own prompts (memory bookkeeping prompts are the framework's, not an agent's)
    prompts = q(run, "SELECT round, phase, prompt, agent_id FROM llm_calls WHERE action NOT LIKE 'memory.%'")
    by_round = {r: [p for rr, ph, p, _ in prompts if rr == r and ph != "interview"] for r in (1, 2, 3)}
    assert all(by_round.values())
    assert all(NEWS in p for p in by_round[2]), "every round-2 prompt carries the intervention"
    assert not any(NEWS in p for p in by_round[1] + by_round[3]), "round 1 had none; round 3 has it cleared"
    # the interview: answered, recorded with its round, memory and state untouched
    assert seen["answer"] and seen["before"]["memory"] == seen["after"]["memory"]
    assert seen["before"]["state"] == seen["after"]["state"]
    rows = {(r, k, t): json.loads(d) for r, k, t, d in q(run, "SELECT round, kind, target, data FROM interventions")}
    assert rows[(2, "global", "*")] == {"text": NEWS} and rows[(3, "global", "*")] == {"text": None}
    assert rows[(2, "attribute", "seeker-02")] == {"path": "desired_salary", "value": 123457}
    assert rows[(2, "interview", "seeker-01")]["answer"] == seen["answer"]
    assert q(run, "SELECT COUNT(*) FROM llm_calls WHERE phase = 'interview' AND agent_id = 'seeker-01'")[0][0] == 1
    # the attribute change reaches the agent's own prompts from round 2 on (seeker-02 is still looking then:
    # under the stub's answers seeker-03 was hired in round 1 once applications became one call per posting)
    assert seen["after"]["profile"]["traits"] and "patch" not in seen["after"]
    own = [(rr, p) for rr, ph, p, a in prompts if a == "seeker-02"]
    assert any(rr == 1 for rr, _ in own) and all("123457" not in p for rr, p in own if rr == 1)
    assert [p for rr, p in own if rr >= 2] and all("123457" in p for rr, p in own if rr >= 2)


def test_cli_intervene_set_and_interview(stub_scenario, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", str(stub_scenario), "--rounds", "2", "--out", str(run), "--no-progress",
                 "--intervene", f"2:{NEWS}", "--set", "2:seeker-05:traits.trust=Very Low"]) == 0
    kinds = {(r, k) for r, k in q(run, "SELECT round, kind FROM interventions")}
    assert kinds == {(2, "global"), (2, "attribute")}
    from simulation.core.checkpoint import read_checkpoint, round_dir

    before = read_checkpoint(round_dir(run, 2))["agents"]["seeker-05"]
    assert before["patch"] == {"traits.trust": "Very Low"}
    capsys.readouterr()
    assert main(["interview", str(run), "seeker-05", "--scenario", str(stub_scenario), "What matters most to you in a job?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seeker-05 (after round 2): ") and len(out.strip()) > len("seeker-05 (after round 2):")
    assert read_checkpoint(round_dir(run, 2))["agents"]["seeker-05"] == before
    assert q(run, "SELECT round, kind, target FROM interventions WHERE kind = 'interview'") == [(2, "interview", "seeker-05")]


def test_cli_rejects_malformed_interventions(stub_scenario, tmp_path, capsys):
    for args, field in ((["--intervene", "two:news"], "--intervene"), (["--set", "2:seeker-01:traits"], "--set")):
        assert main(["run", str(stub_scenario), "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err
        assert field in err
    assert main(["interview", str(tmp_path / "nope"), "a", "b"]) == 2
    assert main(["run", str(stub_scenario), "--out", str(tmp_path / "y"), "--no-progress",
                 "--set", "2:nobody-7:traits.trust=Low"]) == 2
    err = capsys.readouterr().err
    assert "--set" in err and "nobody-7" in err
