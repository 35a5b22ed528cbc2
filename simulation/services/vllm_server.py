"""Start and stop vLLM OpenAI-compatible servers as child processes, tracked by pid.

Used for the embedded default (one CPU chat server and one CPU embedding server on 127.0.0.1)
and by the ``llm_service`` / ``embedding_service`` launch scripts. Processes run in their own
session so that stopping one kills its whole process group and nothing else.
"""

from __future__ import annotations

import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from loguru import logger

CPU_ENV = {
    "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB (~46k tokens); embedded.kv_cache_gib or the environment raise it
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


class ServerStartError(RuntimeError):
    """A server process exited or did not become healthy in time."""


PORT_RANGE = (12000, 20000)  # below the kernel's ephemeral ports, and below launch_server.sh's usual bases


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for ports bound to 0 and for outgoing connections."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, outside the ephemeral range. A vLLM server binds its port
    only once its engine is up, tens of seconds after the port was picked; a port from the ephemeral
    range can meanwhile go to any socket bound to port 0 (another vLLM's internal ones: two servers
    starting side by side, one failed with "Address already in use", 2026-12-04)."""
    lo, hi = ephemeral_ports()
    low, high = PORT_RANGE
    rng = random.SystemRandom()  # not the run's seed: ports are no part of a result
    for _ in range(200):
        port = rng.randrange(low, high)
        if lo <= port <= hi:
            break  # an unusual ephemeral range covers ours: take what the kernel gives
        with socket.socket() as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(server: ServerProcess, size: int) -> bytes:
    """The last ``size`` bytes of this start's lines in the server's log (empty without a log)."""
    path = server.spec.log_file
    if not path:
        return b""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(server.log_start, f.tell() - size))
            return f.read()
    except OSError:
        return b""


def port_taken(server: ServerProcess) -> bool:
    """Whether the server's log says its port was taken before it could bind it."""
    return b"Address already in use" in log_tail(server, 8192)


def cpu_threads_bind() -> str:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return f"0-{max(0, n - 1)}"


def auto_kv_cache_gib(agents: int, chat_servers: int = 1, available_gib: float | None = None) -> int:
    """The CPU chat server's KV cache for a population (``embedded.kv_cache_gib: auto``).

    1 GiB per 60 agents, from 1 to 4 (240 agents x 3 rounds of job seeking reach the prefix-cache
    ceiling at 4), and at most a quarter of the memory available now per chat server: each GiB of KV
    cache is a GiB more of the server's resident memory.
    """
    if available_gib is None:
        available_gib = available_memory_gib()
    want = min(4, max(1, math.ceil(agents / 60)))
    return max(1, min(want, int(available_gib / (4 * chat_servers))))


def available_memory_gib() -> float:
    """``MemAvailable`` from ``/proc/meminfo`` in GiB (8 where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
        return kib / 2**20
    except (OSError, StopIteration, ValueError, IndexError):
        return 8.0


def cpu_dtype() -> str:
    """bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX), else float32.

    On an AVX2-only CPU vLLM emulates bfloat16: SmolLM2 made 29 generated tok/s there against 103
    in float32 (16 concurrent requests, 2 cores, measured 2026-11-25).
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


@dataclass
class ServerSpec:
    """What to serve and how: one vLLM process."""

    model: str
    served_name: str
    host: str = "127.0.0.1"
    port: int = 0
    kind: str = "chat"  # chat | embedding
    device: str = "cpu"  # cpu | cuda:<i>
    extra_args: list[str] = field(default_factory=list)
    max_model_len: int | None = None
    log_file: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def one_process(self) -> bool:
        """A CPU embedding server is called in bursts, and between them nothing of it may spin on the
        chat server's cores: idle OpenMP threads sleep, and the model runs in the engine's own process,
        because a separate worker busy-polls its shared-memory queue for 1 s after every request (a
        whole core under a trickle of memory writes; same vectors, same speed)."""
        return self.kind == "embedding" and self.device == "cpu"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.served_name,
            "--host", self.host, "--port", str(self.port),
            "--disable-uvicorn-access-log",
        ]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        dtype = cpu_dtype() if self.device == "cpu" else "bfloat16"
        if self.kind == "embedding":
            cmd += ["--runner", "pooling", "--dtype", dtype]
            if self.one_process:
                cmd += ["--distributed-executor-backend", "uni"]
        else:
            cmd += [
                "--dtype", dtype,
                "--structured-outputs-config", '{"backend":"xgrammar","disable_any_whitespace":true}',
            ]
        if self.device == "cpu":
            cmd += ["-O0"]
            if self.kind == "chat" and "--block-size" not in self.extra_args:
                # prefix caching reuses whole blocks: CPU's default of 128 tokens caches little of
                # prompts whose shared part (an agent's persona) is 100-200 tokens; 32 is the
                # smallest size the CPU kernels run at full speed
                cmd += ["--block-size", "32"]
        return cmd + list(self.extra_args)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(CPU_ENV if self.device == "cpu" else {"HF_HUB_OFFLINE": "1"})
        if "VLLM_CPU_KVCACHE_SPACE" in os.environ:  # the operator's choice wins over the default
            env["VLLM_CPU_KVCACHE_SPACE"] = os.environ["VLLM_CPU_KVCACHE_SPACE"]
        if self.device == "cpu":
            env["VLLM_CPU_OMP_THREADS_BIND"] = os.environ.get("VLLM_CPU_OMP_THREADS_BIND", cpu_threads_bind())
            if self.one_process:
                env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        else:
            env["CUDA_VISIBLE_DEVICES"] = self.device.split(":", 1)[1]
        env.update(self.extra_env)
        return env


@dataclass
class ServerProcess:
    """A started server: its spec, pid and base URL."""

    spec: ServerSpec
    pid: int
    popen: subprocess.Popen | None = None
    log_start: int = 0  # where this start's lines begin in the log (a log file is appended to)

    @property
    def base_url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.port}/v1"

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        stop_pid(self.pid, timeout)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.2)


def start_server(spec: ServerSpec, wait: bool = True, timeout: float = 300.0) -> ServerProcess:
    """Start one vLLM server in its own session; wait until ``/health`` answers."""
    if not spec.port:
        spec.port = free_port(spec.host)
    log = open(spec.log_file, "ab") if spec.log_file else subprocess.DEVNULL
    log_start = log.tell() if spec.log_file else 0
    logger.info("starting {} server '{}' on {}:{}", spec.kind, spec.served_name, spec.host, spec.port)
    popen = subprocess.Popen(
        spec.command(), env=spec.env(), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    server = ServerProcess(spec=spec, pid=popen.pid, popen=popen, log_start=log_start)
    if wait:
        try:
            wait_healthy(server, timeout)
        except BaseException:
            server.stop()
            raise
    return server


def log_stage(server: ServerProcess) -> str:
    """The last line of the server's log, shortened: what it is doing while it starts."""
    lines = [ln.strip() for ln in log_tail(server, 4096).decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    last = last.split("] ", 1)[-1] if "] " in last else last  # drop vLLM's "INFO 12-01 10:00:00 [file.py:12]"
    return last[:90]


def wait_healthy(server: ServerProcess, timeout: float,
                 on_wait: Callable[[ServerProcess, float], None] | None = None, poll_s: float = 0.5) -> None:
    """Wait until the server answers ``/health``; ``on_wait(server, elapsed_s)`` is called while waiting."""
    url = server.base_url.removesuffix("/v1") + "/health"
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if on_wait is not None:
            on_wait(server, time.monotonic() - t0)
        if not server.alive():
            hint = f"; see {server.spec.log_file}" if server.spec.log_file else ""
            raise ServerStartError(f"{server.spec.kind} server '{server.spec.served_name}' exited during start{hint}")
        if port_taken(server):  # vLLM then hangs instead of exiting: say so now, not at the timeout
            raise ServerStartError(f"{server.spec.kind} server '{server.spec.served_name}': port {server.spec.port} "
                                   f"was taken by another process before the server could bind it; see "
                                   f"{server.spec.log_file}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise ServerStartError(f"{server.spec.kind} server did not become healthy within {timeout:.0f} s")


def chat_spec(**kw) -> ServerSpec:
    from .model_assets import CHAT_MODEL_NAME, chat_model_dir

    kw.setdefault("max_model_len", 2048)
    kw.setdefault("model", str(chat_model_dir()))
    kw.setdefault("served_name", CHAT_MODEL_NAME)
    return ServerSpec(kind="chat", **kw)


def embedding_spec(**kw) -> ServerSpec:
    from .model_assets import EMBED_MODEL_NAME, embedding_model_dir

    return ServerSpec(model=str(embedding_model_dir()), served_name=EMBED_MODEL_NAME, kind="embedding", **kw)


def log_dir() -> Path:
    from .model_assets import cache_root

    d = cache_root() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d
