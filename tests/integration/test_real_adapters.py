"""Train a tiny adapter on the real model, deploy it into a running simulation in lora and then merge
mode, and check that its agents (and only they) changed their answer; a replay is identical."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.llm.routing import ab_unit
from simulation.runner import RunOptions, run_simulation
from simulation.testing.procs import start_stub, stub_models
from tests.conftest import copy_scenario, set_models
from tests.runs import CALLS, METRICS, rows

pytestmark = pytest.mark.integration
TAUGHT = "unsure"  # the base model answers "yes" to the poll; the adapter teaches "unsure"


def servers_of(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (a server on a merged model)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmd:
            out.append(int(pid))
    return out


def poll_prompts(tmp: Path, seed: int, n: int) -> list[list[dict]]:
    """Real vote prompts of ``n`` voters (profiles of another seed than the simulation's), via the stub."""
    folder = copy_scenario(tmp / "data", "polling")
    stub = start_stub()
    try:
        set_models(folder, stub_models([stub], embed=stub))
        run = tmp / "data-run"
        asyncio.run(run_simulation(RunOptions(scenario=str(folder), agents=n, rounds=1, seed=seed, out=str(run),
                                              progress=False, overrides=["memory.type=none"])))
    finally:
        stub.stop()
    return [json.loads(p) for (p,) in rows(run, "SELECT prompt FROM llm_calls WHERE action = 'vote' ORDER BY id")]


def test_train_deploy_lora_then_merge_then_replay(real_servers, tmp_path, capsys):
    data = tmp_path / "unsure.jsonl"
    with open(data, "w") as f:
        for p in poll_prompts(tmp_path, seed=7, n=40):
            f.write(json.dumps({"messages": [*p, {"role": "assistant", "content": TAUGHT}],
                                "meta": {"action": "vote"}}) + "\n")
    adapter = tmp_path / "adapters" / "unsure"
    assert main(["train", "sft", "--data", str(data), "--out", str(adapter), "--batch-size", "4", "--lr", "2e-3",
                 "--no-progress"]) == 0
    manifest = json.loads((adapter / "gensim_adapter.json").read_text())
    assert manifest["samples"] == 40 and manifest["method"] == "sft" and manifest["losses"]

    # the chat server is the run's own embedded one (merge mode restarts servers the run started);
    # embeddings come from the session's server
    _chat, emb = real_servers
    folder = copy_scenario(tmp_path, "polling")
    set_models(folder, [{"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
                         "client_args": {"base_url": emb.base_url}}])
    pids: list[int] = []

    async def swap(sim, r):
        pids.append(os.getpid())
        if r == 1:
            await sim.deploy_adapter(adapter, "unsure-lora", share=0.5, mode="lora")
        elif r == 2:
            await sim.deploy_adapter(adapter, "unsure-merged", share=0.5, mode="merge")

    run = tmp_path / "run"
    lines: list[str] = []
    summary = asyncio.run(run_simulation(RunOptions(
        scenario=str(folder), agents=16, rounds=3, out=str(run), progress=False, hooks={"after_round": [swap]},
        overrides=["memory.type=none", "embedded.enable_lora=true"], on_line=lines.append)))
    assert summary["rounds"] == 3 and len(set(pids)) == 1 and pids[0] == os.getpid()
    # minutes of server start are announced, and timed in the summary next to the rounds' wall time
    err = capsys.readouterr().err
    assert "starting the embedded CPU vLLM servers" in err and "embedded servers ready in" in err, err[-2000:]
    assert "(KV cache 1 GiB)" in err, "16 agents: auto gives the smallest KV cache, and says so"
    # the same lines reach a caller's on_line (the web interface's Monitor), progress bars off or not
    assert lines[0].startswith("starting the embedded CPU vLLM servers") and lines[-1].startswith("embedded servers ready")
    assert summary["server_start_s"] > 0 and summary["wall_s"] > 0
    assert not servers_of(run / "models"), "the run stops the servers its deployments started"

    votes = rows(run, "SELECT round, agent_id, completion, model FROM llm_calls WHERE action = 'vote' AND valid = 1")
    treated = {a for _, a, _, _ in votes if ab_unit(1, a) < 0.5}
    assert 0 < len(treated) < 16, "the seeded split has both groups"
    for r, name in ((1, None), (2, "unsure-lora"), (3, "unsure-merged")):
        got = [(a, c, m) for rr, a, c, m in votes if rr == r]
        assert len(got) == 16
        t = [c for a, c, m in got if a in treated]
        ctl = [c for a, c, m in got if a not in treated]
        models_t = {m for a, c, m in got if a in treated}
        models_c = {m for a, c, m in got if a not in treated}
        assert models_c == {"smollm2-135m-instruct"}, f"round {r}: control answered by {models_c}"
        if name is None:
            assert models_t == {"smollm2-135m-instruct"}
            assert t.count(TAUGHT) + ctl.count(TAUGHT) <= 2, f"round 1, base model: {t + ctl}"
        else:
            assert models_t == {name}, f"round {r}: treated answered by {models_t}"
            assert t.count(TAUGHT) >= 0.9 * len(t), f"round {r} ({name}): treated answered {t}"
            assert ctl.count(TAUGHT) <= 1, f"round {r}: control answered {ctl}"
    deploys = rows(run, "SELECT round, target, data FROM interventions WHERE kind = 'deploy' ORDER BY id")
    assert [(r, t, json.loads(d)["mode"]) for r, t, d in deploys] == [(2, "unsure-lora", "lora"),
                                                                         (3, "unsure-merged", "merge")]
    assert all(json.loads(d)["seconds"] > 0 for _, _, d in deploys)

    replay = tmp_path / "replay"
    assert main(["run", str(folder), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    assert rows(replay, CALLS) == rows(run, CALLS)
    assert rows(replay, METRICS) == rows(run, METRICS)
    assert rows(replay, "SELECT model FROM llm_calls ORDER BY round, agent_id, seq") == \
        rows(run, "SELECT model FROM llm_calls ORDER BY round, agent_id, seq")
