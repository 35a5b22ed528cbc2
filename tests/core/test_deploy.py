"""Deploying an adapter into a running simulation (lora mode, on the live stub): the split, the record,
a resume or fork after it, a replay of it, and the errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.llm.routing import ab_unit
from simulation.runner import RunOptions, run_simulation
from simulation.testing.procs import stub_models, stub_stats
from simulation.training.manifest import AdapterManifest, write_manifest
from tests.conftest import copy_scenario, set_models
from tests.runs import CALLS, METRICS, normalised, rows


def fake_adapter(folder: Path) -> Path:
    """An adapter folder as gensim train writes it (the stub never reads the weights)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    write_manifest(folder, AdapterManifest(base_model="smol", method="sft", data_file="d", data_sha256="0" * 64,
                                           samples=1, epochs=1, lora_rank=4, learning_rate=1e-3, train_s=1.0,
                                           device="cpu"))
    return folder


@pytest.fixture()
def polling(tmp_path, stub):
    folder = copy_scenario(tmp_path, "polling")
    set_models(folder, stub_models([stub], embed=stub))
    return folder


def run(folder: Path, out: Path, hooks=None, rounds: int = 3) -> dict:
    return asyncio.run(run_simulation(RunOptions(scenario=str(folder), agents=30, rounds=rounds, out=str(out),
                                                 progress=False, hooks=hooks or {})))


def treated_of(out: Path, r: int, name: str) -> set[str]:
    return {a for (a,) in rows(out, "SELECT DISTINCT agent_id FROM llm_calls WHERE round = ? AND model = ?", r, name)}


def test_deploy_mid_run_then_fork_resume_and_replay(polling, stub, tmp_path):
    adapter = fake_adapter(tmp_path / "ad" / "fix")

    async def swap(sim, r):
        if r == 1:
            dep = await sim.deploy_adapter(adapter, share=0.5)
            assert dep.name == "fix" and dep.mode == "lora" and dep.round == 2

    out = tmp_path / "run"
    summary = run(polling, out, {"after_round": [swap]})
    assert summary["deployments"] and stub_stats(stub)["adapters"] == ["fix"]
    expected = {a for (a,) in rows(out, "SELECT agent_id FROM agents") if ab_unit(1, a) < 0.5}
    assert treated_of(out, 1, "fix") == set()
    assert treated_of(out, 2, "fix") == treated_of(out, 3, "fix") == expected != set()
    ((r, data),) = rows(out, "SELECT round, data FROM interventions WHERE kind = 'deploy'")
    assert r == 2 and json.loads(data)["mode"] == "lora" and json.loads(data)["share"] == 0.5

    # a fork from round 3 starts from the checkpoint of round 2: the deployment is part of it
    fork = tmp_path / "fork"
    assert main(["run", str(polling), "--fork", str(out), "--from-round", "3", "--out", str(fork), "--no-progress"]) == 0
    assert treated_of(fork, 3, "fix") == expected
    assert normalised(rows(fork, CALLS + "")) == normalised(rows(out, CALLS))

    # an interview after the run asks the agent's model of the last checkpoint
    agent = sorted(expected)[0]
    assert main(["interview", str(fork), agent, "What do you think of the park?", "--scenario", str(polling)]) == 0
    assert rows(fork, "SELECT model FROM llm_calls WHERE phase = 'interview'") == [("fix",)]

    calls = stub_stats(stub)["chat"]
    replay = tmp_path / "replay"
    assert main(["run", str(polling), "--replay", str(out), "--out", str(replay), "--no-progress"]) == 0
    assert stub_stats(stub)["chat"] == calls, "a replay calls nothing"
    assert rows(replay, CALLS) == rows(out, CALLS) and rows(replay, METRICS) == rows(out, METRICS)


def test_adapter_at_start_by_type_and_errors(polling, stub, tmp_path, capsys):
    adapter = fake_adapter(tmp_path / "ad" / "fix")
    out = tmp_path / "run"
    assert main(["run", str(polling), "--agents", "20", "--rounds", "1", "--out", str(out), "--no-progress",
                 f"llm.adapter={adapter}", "llm.adapter_name=fixed", "llm.adapter_share=1.0"]) == 0
    assert {m for (m,) in rows(out, "SELECT DISTINCT model FROM llm_calls")} == {"fixed"}
    # scoped to the vote: the agents' other calls (here an interview's, a call of no decision) go to the base model
    scoped = tmp_path / "scoped"
    assert main(["run", str(polling), "--agents", "20", "--rounds", "1", "--out", str(scoped), "--no-progress",
                 f"llm.adapter={adapter}", "llm.adapter_name=fixed", "llm.adapter_actions=[vote]"]) == 0
    assert rows(scoped, "SELECT DISTINCT action, model FROM llm_calls") == [("vote", "fixed")]
    ((agent,),) = rows(scoped, "SELECT agent_id FROM llm_calls LIMIT 1")
    assert main(["interview", str(scoped), agent, "What do you think of the park?", "--scenario", str(polling)]) == 0
    ((interviewed,),) = rows(scoped, "SELECT model FROM llm_calls WHERE phase = 'interview'")
    assert interviewed is not None and interviewed != "fixed", interviewed
    capsys.readouterr()
    assert main(["run", str(polling), "--agents", "20", "--rounds", "1", "--out", str(tmp_path / "typo"),
                 "--no-progress", f"llm.adapter={adapter}", "llm.adapter_actions=[vot]"]) == 0
    assert "llm.adapter_actions: no call of vot in this run, so the adapter answered none" in capsys.readouterr().err
    assert rows(tmp_path / "typo", "SELECT DISTINCT model FROM llm_calls WHERE model = 'fix'") == []
    assert main(["run", str(polling), "--rounds", "1", "--out", str(tmp_path / "r2"), "--no-progress",
                 "llm.model_by_type.voter=nobody"]) == 2
    err = capsys.readouterr().err
    assert "llm.model_by_type.voter: 'nobody' is not a configured chat model (served: stub, stub-0)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r2").exists(), "refused before a folder is made"
    assert main(["run", str(polling), "--rounds", "1", "--out", str(tmp_path / "r3"), "--no-progress",
                 f"llm.adapter={tmp_path}"]) == 2
    assert "llm.adapter: not a PEFT adapter folder" in capsys.readouterr().err


async def _deploy_errors(sim, r):
    with pytest.raises(KeyError, match="no agent 'ghost'"):
        await sim.deploy_adapter("/x", "n", agents=["ghost"])
    with pytest.raises(ValueError, match="share"):
        await sim.deploy_adapter("/x", "n", share=2.0)
    with pytest.raises(ValueError, match="letters"):
        await sim.deploy_adapter("/x", "bad name")


def test_deploy_rejects_bad_arguments(polling, tmp_path):
    run(polling, tmp_path / "run", {"after_round": [_deploy_errors]}, rounds=1)


def test_llm_model_and_model_by_type_name_config_entries(tmp_path):
    from simulation.testing.procs import start_stub

    a, b = start_stub(), start_stub()
    try:
        folder = copy_scenario(tmp_path, "polling")
        set_models(folder, [{"config_name": "a", "model_name": "model-a", "client_args": {"base_url": f"http://127.0.0.1:{a.spec.port}/v1"}},
                            {"config_name": "b", "model_name": "model-b", "client_args": {"base_url": f"http://127.0.0.1:{b.spec.port}/v1"}},
                            stub_models([], embed=a)[0]])
        for i, (setting, model, stub) in enumerate((("llm.model=b", "model-b", b), ("llm.model_by_type.voter=a", "model-a", a),
                                                    ("llm.model=model-b", "model-b", b))):
            before = stub_stats(stub)["chat"]
            out = tmp_path / f"run{i}"
            assert main(["run", str(folder), "--agents", "10", "--rounds", "1", "--out", str(out), "--no-progress",
                         "memory.type=none", setting]) == 0
            assert {m for (m,) in rows(out, "SELECT DISTINCT model FROM llm_calls")} == {model}
            assert stub_stats(stub)["chat"] - before == rows(out, "SELECT COUNT(*) FROM llm_calls")[0][0]
    finally:
        a.stop()
        b.stop()
