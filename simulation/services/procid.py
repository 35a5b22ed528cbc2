"""Process identity: a pid plus its start time and command line, so a stale pid file never names
a process that merely reuses the number (the kill scripts check it before signalling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def identity(pid: int) -> dict[str, Any] | None:
    """``{"start": ticks since boot, "cmd": command line}`` of a live process (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; field 22 overall is the start time
    return {"start": int(fields[19]), "cmd": cmd[:500]}


def same_process(pid: int, recorded: dict[str, Any] | None, marker: str) -> tuple[bool, str]:
    """Whether ``pid`` is still the process a file recorded: the same start time when the file holds
    one (older files: a command line containing ``marker``). Returns (yes, why not)."""
    now = identity(pid)
    if now is None:
        return False, f"pid {pid} is gone"
    if recorded and "start" in recorded:
        # pid and start time name one process; the command line may differ from the one recorded,
        # which can be read before the child's exec
        if now["start"] != recorded["start"]:
            return False, f"pid {pid} is now another process ({now['cmd'][:60]!r})"
        return True, ""
    if marker not in now["cmd"]:
        return False, f"pid {pid} is now another process ({now['cmd'][:60]!r})"
    return True, ""


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux ``/proc``), zombies left out."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(d.name))
    return out
