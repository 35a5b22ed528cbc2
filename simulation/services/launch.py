"""``python -m simulation.services.launch {start,stop} {llm,embedding}``: what the shell scripts call.

``start llm`` starts one vLLM server per visible GPU (or one CPU server with the bundled model when
there is none), detached, on consecutive ports; ``start embedding`` likewise for the embedding
model. Both write a manifest; ``stop`` kills exactly the pids in it.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .manifest import model_entry, read_manifest, write_manifest
from .procid import identity, same_process
from .vllm_server import ServerSpec, chat_spec, embedding_spec, log_dir, start_server, stop_pid, wait_healthy


class LaunchConfig(BaseModel):
    """``llm_service/llm_config.yml`` / ``embedding_service/emb_config.yml``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="model folder or name; default: the bundled model")
    served_name: str | None = None
    host: str = "127.0.0.1"
    base_port: int = Field(default=8000, ge=1, le=65535)
    max_model_len: int | None = None
    max_concurrency: int = Field(default=16, ge=1)
    extra_args: list[str] = Field(default_factory=list)
    gpus: list[int] | None = Field(default=None, description="GPU indices to use; default: all visible")


def visible_gpus() -> list[int]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [i for i, _ in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def load_launch_config(path: Path | None) -> LaunchConfig:
    if path is None or not path.is_file():
        return LaunchConfig()
    try:
        return LaunchConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as e:
        err = e.errors()[0]
        raise SystemExit(f"error: {path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def start(kind: str, cfg: LaunchConfig) -> list[dict]:
    running = read_manifest(kind)
    if running:
        print(f"{kind} servers already running: " + ", ".join(e["client_args"]["base_url"] for e in running))
        return running
    gpus = cfg.gpus if cfg.gpus is not None else visible_gpus()
    devices = [f"cuda:{g}" for g in gpus] or ["cpu"]
    if kind == "embedding" and devices != ["cpu"]:
        devices = devices[:1]
    servers = []
    for i, dev in enumerate(devices):
        kw = {"host": cfg.host, "port": cfg.base_port + i, "device": dev, "extra_args": cfg.extra_args,
              "log_file": str(log_dir() / f"{kind}_{cfg.base_port + i}.log")}
        if cfg.max_model_len:
            kw["max_model_len"] = cfg.max_model_len
        if cfg.model:
            spec = ServerSpec(model=cfg.model, served_name=cfg.served_name or Path(cfg.model).name,
                              kind="chat" if kind == "llm" else "embedding", **kw)
        else:
            spec = chat_spec(**kw) if kind == "llm" else embedding_spec(**kw)
        servers.append(start_server(spec, wait=False))
    entries = []
    for s in servers:
        try:
            wait_healthy(s, 900)
        except Exception as e:
            for t in servers:
                t.stop()
            raise SystemExit(f"error: {kind} server on port {s.spec.port} failed to start: {e}") from None
        entries.append(model_entry(kind, f"{s.spec.served_name}@{s.spec.port}", s.base_url, s.pid,
                                   socket.gethostname(), cfg.max_concurrency) | {"identity": identity(s.pid)})
        print(f"{kind} server ready: {s.base_url} (pid {s.pid}, {s.spec.device})")
    for e in entries:  # the run addresses the model by its served name
        e["model_name"] = e["config_name"].rsplit("@", 1)[0]
    path = write_manifest(kind, entries)
    print(f"manifest: {path}")
    return entries


def stop(kind: str) -> int:
    entries = read_manifest(kind, alive_only=False)
    for e in entries:
        ours, why = same_process(int(e["pid"]), e.get("identity"), "vllm")
        if not ours:  # a stale manifest: never signal a process that only reuses the number
            print(f"skipped {kind} server {e['client_args']['base_url']}: {why}")
            continue
        stop_pid(int(e["pid"]))
        print(f"stopped {kind} server pid {e['pid']} ({e['client_args']['base_url']})")
    write_manifest(kind, [])
    return len(entries)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m simulation.services.launch")
    ap.add_argument("action", choices=["start", "stop"])
    ap.add_argument("kind", choices=["llm", "embedding"])
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--base-port", type=int, default=None)
    a = ap.parse_args(argv)
    if a.action == "stop":
        stop(a.kind)
        return
    cfg = load_launch_config(a.config)
    if a.base_port:
        cfg.base_port = a.base_port
    start(a.kind, cfg)


if __name__ == "__main__":
    sys.exit(main())
