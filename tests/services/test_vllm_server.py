"""How the embedded servers are started: what their command lines and environments say."""

from __future__ import annotations

from simulation.services.vllm_server import ServerSpec


def test_cpu_embedding_server_runs_in_one_quiet_process():
    spec = ServerSpec(model="/m", served_name="emb", port=1, kind="embedding")
    cmd, env = spec.command(), spec.env()
    assert cmd[cmd.index("--distributed-executor-backend") + 1] == "uni"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_chat_and_gpu_servers_keep_vllm_defaults():
    chat = ServerSpec(model="/m", served_name="chat", port=1)
    assert "--distributed-executor-backend" not in chat.command()
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in chat.env() or chat.env()["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0"
    gpu_emb = ServerSpec(model="/m", served_name="emb", port=1, kind="embedding", device="cuda:0")
    assert "--distributed-executor-backend" not in gpu_emb.command()
    assert gpu_emb.env()["CUDA_VISIBLE_DEVICES"] == "0"
