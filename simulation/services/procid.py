"""Process identity: a pid plus its start time and command line, so a stale pid file never names
a process that merely reuses the number (the kill scripts check it before signalling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _stat_fields(proc: Path) -> list[str]:
    """``/proc/PID/stat`` after "pid (comm) ": state, ppid, pgrp, session, ... (raises OSError when gone)."""
    stat = (proc / "stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def identity(pid: int) -> dict[str, Any] | None:
    """``{"start": ticks since boot, "cmd": command line}`` of a live process (Linux ``/proc``), or None."""
    proc = Path(f"/proc/{pid}")
    try:
        fields = _stat_fields(proc)
        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    return {"start": int(fields[19]), "cmd": cmd[:500]}  # field 22 of the whole line: the start time


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
            fields = _stat_fields(d)
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(d.name))
    return out
