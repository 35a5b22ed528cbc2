"""Start stub servers as child processes for tests and benchmarks; stop them by pid. Read the
process table, to measure or inspect what a run or a server started."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from ..services.vllm_server import (
    ServerProcess,
    ServerSpec,
    ServerStartError,
    free_port,
    stop_pid,
    wait_healthy,
)


def start_stub(extras: bool = True, port: int | None = None, timeout: float = 30.0, live: bool = False,
               off_menu: bool = False, fail_share: float = 0.0, schema_only: bool = False,
               misbehave: str = "", misbehave_share: float = 0.3) -> ServerProcess:
    """A stub server in its own process (see :mod:`simulation.testing.stub_server` for the options)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "simulation.testing.stub_server", "--port", str(port)]
    for flag, on in (("--no-extras", not extras), ("--live", live), ("--off-menu", off_menu),
                     ("--schema-only", schema_only)):
        if on:
            cmd.append(flag)
    if fail_share:
        cmd += ["--fail-share", str(fail_share)]
    if misbehave:
        cmd += ["--misbehave", misbehave, "--misbehave-share", str(misbehave_share)]
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
    return _healthy(ServerProcess(ServerSpec(model="stub", served_name="stub", port=port), p.pid, p), timeout, 0.1)


def _healthy(server: ServerProcess, timeout: float, poll_s: float) -> ServerProcess:
    """``server`` once it answers ``/health``; stopped, and an error raised, if it dies or times out."""
    try:
        wait_healthy(server, timeout, poll_s=poll_s)
    except ServerStartError:
        stop_pid(server.pid)
        raise
    return server


def stub_stats(server: ServerProcess) -> dict:
    """The stub's counters: answered ``chat`` and ``embeddings`` calls, ``held`` at its gate."""
    return httpx.get(f"http://127.0.0.1:{server.spec.port}/stats", timeout=10).json()


def stub_models(servers: list[ServerProcess], embed: ServerProcess | None = None,
                vllm_extras: str = "auto") -> list[dict]:
    """model_configs.json entries for stub chat servers (and an embedding stub)."""
    out = [{"config_name": f"stub-{i}", "model_name": "stub", "client_args": {"base_url": s.base_url},
            "max_concurrency": 64, "vllm_extras": vllm_extras} for i, s in enumerate(servers)]
    if embed is not None:
        out.append({"config_name": "stub-emb", "model_type": "openai_embedding", "model_name": "stub",
                    "client_args": {"base_url": embed.base_url}, "max_concurrency": 8})
    return out


def process_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, name, CPU seconds) for every process this user can read."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1: text.rindex(")")], text[text.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), name, (int(rest[11]) + int(rest[12])) / tick)
    return out


def descendants(root: int, table: dict[int, tuple[int, str, float]], exclude: set[int] = frozenset()) -> list[int]:
    """``root`` and every process below it in ``table``, leaving out the subtrees of ``exclude``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude or pid not in table:
            continue
        out.append(pid)
        todo += children.get(pid, [])
    return out


def start_llamacpp(timeout: float = 120.0, parallel: int = 8) -> ServerProcess:
    """llama.cpp's OpenAI-compatible server on the bundled GGUF (see :mod:`simulation.testing.llamacpp`)."""
    port = free_port()
    cmd = [sys.executable, "-m", "simulation.testing.llamacpp", "--port", str(port), "--parallel", str(parallel)]
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return _healthy(ServerProcess(ServerSpec(model="gguf", served_name="smollm2-gguf", port=port), p.pid, p),
                    timeout, 0.5)
