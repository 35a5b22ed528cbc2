"""Per-round checkpoints as msgpack (plain data, never pickles), written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack


def checkpoint_path(run_dir: Path, round_: int) -> Path:
    return run_dir / "checkpoints" / f"round_{round_:06d}.msgpack"


def write_checkpoint(run_dir: Path, round_: int, data: dict[str, Any]) -> Path:
    path = checkpoint_path(run_dir, round_)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(msgpack.packb(data, use_bin_type=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    files = sorted((run_dir / "checkpoints").glob("round_*.msgpack"))
    if not files:
        return None
    return int(files[-1].stem.split("_")[1]), files[-1]


def read_checkpoint(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
