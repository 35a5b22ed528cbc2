"""Per-round checkpoints as msgpack (plain data, never pickles), written atomically.

``checkpoints/round_000003/`` holds one ``group_NNNN.msgpack`` per agent group (each written by its
own group, in parallel) and ``driver.msgpack`` (environment and counters), written last: a round
folder without it is incomplete and ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgpack

DRIVER = "driver.msgpack"


def round_dir(run_dir: Path, round_: int) -> Path:
    """The folder of round ``round_``'s checkpoint inside a run folder."""
    return Path(run_dir) / "checkpoints" / f"round_{round_:06d}"


def write_msgpack(path: Path, data: Any) -> int:
    """Write ``data`` atomically (temporary file, then rename); returns the bytes written."""
    blob = msgpack.packb(data, use_bin_type=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(blob)


def read_msgpack(path: Path) -> Any:
    """Read a file :func:`write_msgpack` wrote."""
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False, strict_map_key=False)


def write_driver_state(d: Path, data: dict[str, Any]) -> Path:
    """Write the driver's part of a checkpoint (environment, totals, routing) into ``d``."""
    write_msgpack(d / DRIVER, data)
    return d


def read_driver_state(d: Path) -> dict[str, Any]:
    """The driver's part of the checkpoint in ``d``."""
    return read_msgpack(d / DRIVER)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint: ``(round, folder)``."""
    dirs = sorted(d for d in (Path(run_dir) / "checkpoints").glob("round_*") if (d / DRIVER).is_file())
    if not dirs:
        return None
    return int(dirs[-1].name.split("_")[1]), dirs[-1]


def read_checkpoint(d: Path) -> dict[str, Any]:
    """A whole checkpoint in one dict: the driver's state plus ``agents`` merged from every group file."""
    data = read_driver_state(Path(d))
    agents: dict[str, Any] = {}
    for f in sorted(Path(d).glob("group_*.msgpack")):
        agents.update(read_msgpack(f)["agents"])
    data["agents"] = agents
    return data
