"""Manifests: the endpoints the launch scripts started, so that runs (and the kill scripts) find them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"llm": "llm_service", "embedding": "embedding_service"}


def manifest_path(kind: str) -> Path:
    env = os.environ.get(f"GENSIM_{kind.upper()}_MANIFEST")
    return Path(env) if env else REPO_ROOT / FOLDERS[kind] / ".manifest.json"


def read_manifest(kind: str, alive_only: bool = True) -> list[dict[str, Any]]:
    from .vllm_server import pid_alive

    path = manifest_path(kind)
    if not path.is_file():
        return []
    entries = json.loads(path.read_text())
    return [e for e in entries if not alive_only or pid_alive(int(e.get("pid", 0)))]


def write_manifest(kind: str, entries: list[dict[str, Any]]) -> Path:
    path = manifest_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)
    return path


def model_entry(kind: str, name: str, base_url: str, pid: int, host: str, max_concurrency: int = 16) -> dict[str, Any]:
    """An AgentScope-style model config entry, plus the pid that started it."""
    return {"config_name": name, "model_type": "openai_chat" if kind == "llm" else "openai_embedding",
            "model_name": name.rsplit("@", 1)[0], "api_key": "EMPTY", "client_args": {"base_url": base_url},
            "max_concurrency": max_concurrency, "host": host, "pid": pid}
