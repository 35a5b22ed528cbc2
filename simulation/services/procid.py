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
        if now["start"] != recorded["start"] or now["cmd"] != recorded.get("cmd", now["cmd"]):
            return False, f"pid {pid} is now another process ({now['cmd'][:60]!r})"
        return True, ""
    if marker not in now["cmd"]:
        return False, f"pid {pid} is now another process ({now['cmd'][:60]!r})"
    return True, ""
