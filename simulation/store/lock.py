"""One process per run folder: an advisory lock held while a run, a rating or an interview writes it.

Two ``gensim run --resume RUN`` started together would both run the next round and record it twice;
the second one is refused instead, naming the process that holds the folder. Reading a run (a
replay's source, a fork's parent, an export) takes no lock. The lock is the kernel's (``flock``):
it goes away with its process, so a killed run leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from loguru import logger

from ..config import ConfigError, ConfigProblem

LOCK_FILE = ".gensim.lock"


class RunLock:
    """Hold ``<run_dir>/.gensim.lock`` exclusively; ``what`` says what this process does there."""

    def __init__(self, run_dir: Path, what: str = "run"):
        self.path = Path(run_dir) / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a :class:`ConfigError` naming the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError([ConfigProblem(str(self.path.parent), "run folder", (
                f"in use by {holder}: one process per run folder (wait for it to end, or stop it)"))]) from None
        except OSError as e:  # a file system without locks (some network mounts): say so, and go on
            logger.warning("{}: cannot lock the run folder ({}); make sure no other process writes it", self.path.parent, e)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.what})".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the folder go (the file stays: removing it could race a process taking it)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
