"""Start stub servers as child processes for tests and benchmarks; stop them by pid."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from ..services.vllm_server import ServerProcess, ServerSpec, free_port, stop_pid


def start_stub(extras: bool = True, port: int | None = None, timeout: float = 30.0) -> ServerProcess:
    port = port or free_port()
    cmd = [sys.executable, "-m", "simulation.testing.stub_server", "--port", str(port)]
    if not extras:
        cmd.append("--no-extras")
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
    server = ServerProcess(ServerSpec(model="stub", served_name="stub", port=port), p.pid, p)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_pid(p.pid)
    raise RuntimeError("stub server did not start")


def stub_models(servers: list[ServerProcess], embed: ServerProcess | None = None,
                vllm_extras: str = "auto") -> list[dict]:
    """model_configs.json entries for stub chat servers (and an embedding stub)."""
    out = [{"config_name": f"stub-{i}", "model_name": "stub", "client_args": {"base_url": s.base_url},
            "max_concurrency": 64, "vllm_extras": vllm_extras} for i, s in enumerate(servers)]
    if embed is not None:
        out.append({"config_name": "stub-emb", "model_type": "openai_embedding", "model_name": "stub",
                    "client_args": {"base_url": embed.base_url}, "max_concurrency": 8})
    return out
