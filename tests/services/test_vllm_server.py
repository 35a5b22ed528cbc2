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


def test_cpu_chat_server_block_size_and_kv_cache(monkeypatch):
    """Prefix caching reuses whole blocks: CPU chat servers use 32-token blocks (the default 128 cached
    little of prompts with a 100-200-token shared part); the KV cache is 1 GiB unless raised."""
    from simulation.services.vllm_server import chat_spec, embedding_spec

    spec = chat_spec(model="/m", served_name="m", port=1)
    cmd = spec.command()
    assert cmd[cmd.index("--block-size") + 1] == "32"
    assert "--block-size" not in embedding_spec(port=2).command()
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert spec.env()["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    assert spec.env()["VLLM_CPU_KVCACHE_SPACE"] == "3"
    raised = chat_spec(model="/m", served_name="m", port=1, extra_env={"VLLM_CPU_KVCACHE_SPACE": "4"})
    assert raised.env()["VLLM_CPU_KVCACHE_SPACE"] == "4"
    own = chat_spec(model="/m", served_name="m", port=1, extra_args=["--block-size", "64"]).command()
    assert own.count("--block-size") == 1


def test_kv_cache_grows_with_the_population_within_memory(monkeypatch):
    """``embedded.kv_cache_gib: auto``: 1 GiB per 60 agents, 1 to 4, at most a quarter of the available
    memory per chat server; a number or the operator's environment variable wins."""
    from simulation.config.models import SimulationConfig
    from simulation.runner import kv_cache_env
    from simulation.services.vllm_server import auto_kv_cache_gib

    assert [auto_kv_cache_gib(n, 1, 20.0) for n in (1, 20, 60, 61, 120, 240, 100_000)] == [1, 1, 1, 2, 2, 4, 4]
    assert auto_kv_cache_gib(240, 3, 20.0) == 1 and auto_kv_cache_gib(240, 1, 9.0) == 2
    assert auto_kv_cache_gib(240, 1, 1.0) == 1  # never below 1 GiB

    def sim(**embedded):
        return SimulationConfig.model_validate({"name": "t", "agents": {"seeker": {"count": 200}, "interviewer": {"count": 40}},
                                                "embedded": embedded})

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setattr("simulation.services.vllm_server.available_memory_gib", lambda: 20.0)
    assert kv_cache_env(sim()) == {"VLLM_CPU_KVCACHE_SPACE": "4"}  # 240 agents
    assert kv_cache_env(sim(kv_cache_gib=2)) == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    assert kv_cache_env(sim()) == {}  # the server inherits the operator's 3
    assert kv_cache_env(sim(kv_cache_gib=2)) == {"VLLM_CPU_KVCACHE_SPACE": "2"}


def test_free_ports_come_from_outside_the_ephemeral_range():
    """A server binds its port tens of seconds after it was picked: a port from the kernel's ephemeral
    range could meanwhile go to any socket bound to port 0 (another vLLM's internal ones)."""
    from simulation.services.vllm_server import PORT_RANGE, ephemeral_ports, free_port

    lo, hi = ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    assert all(PORT_RANGE[0] <= p < PORT_RANGE[1] and not lo <= p <= hi for p in ports)
    assert len(ports) > 1, "picked at random, so that two processes rarely pick alike"


def test_a_server_whose_port_was_taken_fails_at_once_naming_it(tmp_path):
    """vLLM logs "Address already in use" and then hangs; the wait stops at once with the port named,
    and only this start's lines count (a log file is appended to by later starts)."""
    import subprocess
    import time

    import pytest

    from simulation.services.vllm_server import ServerProcess, ServerStartError, port_taken, wait_healthy

    log = tmp_path / "chat.log"
    log.write_bytes(b"OSError: [Errno 98] Address already in use\n")  # an earlier start's
    hung = subprocess.Popen(["sleep", "60"])
    try:
        spec = ServerSpec(model="/m", served_name="chat", port=PORT, log_file=str(log))
        server = ServerProcess(spec=spec, pid=hung.pid, popen=hung, log_start=log.stat().st_size)
        assert not port_taken(server)
        with open(log, "ab") as f:
            f.write(b"INFO starting\n    sock.bind(addr)\nOSError: [Errno 98] Address already in use\n")
        assert port_taken(server)
        t0 = time.monotonic()
        with pytest.raises(ServerStartError, match=f"port {PORT} was taken by another process"):
            wait_healthy(server, 60, poll_s=0.05)
        assert time.monotonic() - t0 < 5
    finally:
        hung.kill()
        hung.wait()


PORT = 1  # nothing answers on port 1: only the log decides
