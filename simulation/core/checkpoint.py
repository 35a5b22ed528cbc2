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
from loguru import logger

DRIVER = "driver.msgpack"
FILES = "files"  # the driver's record of each group file's size: a cut-short file is found without reading it


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


def group_sizes(d: Path) -> dict[str, int]:
    """The size of every group file in ``d`` (recorded in the driver's file, which is written last)."""
    return {f.name: f.stat().st_size for f in sorted(Path(d).glob("group_*.msgpack"))}


def checkpoint_problem(d: Path) -> str | None:
    """Why the checkpoint in ``d`` cannot be read (naming the file), or None when it is whole."""
    try:
        data = read_driver_state(d)
    except (OSError, ValueError, msgpack.UnpackException) as e:
        return f"{d / DRIVER}: unreadable ({type(e).__name__}: {e})"
    if not isinstance(data, dict) or "round" not in data:
        return f"{d / DRIVER}: not a checkpoint's driver state"
    sizes = data.get(FILES)
    if sizes is None:  # written before sizes were recorded: read every group file
        for f in sorted(Path(d).glob("group_*.msgpack")):
            try:
                read_msgpack(f)
            except (OSError, ValueError, msgpack.UnpackException) as e:
                return f"{f}: unreadable ({type(e).__name__}: {e})"
        return None
    for name, size in sizes.items():
        f = Path(d) / name
        have = f.stat().st_size if f.is_file() else None
        if have != size:
            return f"{f}: {'missing' if have is None else f'{have} bytes, {size} written'} (cut short?)"
    return None


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """The newest complete and readable checkpoint: ``(round, folder)``.

    A checkpoint whose files were cut short (a full disk, a copy interrupted) is skipped with a
    warning naming the file, and the one before it is used.
    """
    dirs = sorted(d for d in (Path(run_dir) / "checkpoints").glob("round_*") if (d / DRIVER).is_file())
    for d in reversed(dirs):
        problem = checkpoint_problem(d)
        if problem is None:
            return int(d.name.split("_")[1]), d
        logger.warning("checkpoint {} skipped: {}; using an earlier one", d.name, problem)
    return None


def read_checkpoint(d: Path) -> dict[str, Any]:
    """A whole checkpoint in one dict: the driver's state plus ``agents`` merged from every group file."""
    data = read_driver_state(Path(d))
    agents: dict[str, Any] = {}
    for f in sorted(Path(d).glob("group_*.msgpack")):
        agents.update(read_msgpack(f)["agents"])
    data["agents"] = agents
    return data
