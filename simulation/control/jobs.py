"""Long work started from the web interface (training an adapter, the correction loop, rating by a
judge) on a background thread: its state, the lines it printed, its steps and losses as it goes, its
result or error, and a cancel request it honours where it can."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job."""

    kind: str
    state: str  # running, done, failed, cancelled
    lines: list[str] = field(default_factory=list)
    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started


class Job:
    """One piece of work on a thread. ``target(job)`` does it, reporting through :meth:`emit`,
    :meth:`on_step` and :meth:`on_loss` (a :class:`~simulation.training.TrainWatch`) and checking
    :meth:`cancelled`; an exception named ``...Cancelled`` ends it as cancelled, any other as failed
    with its message (a config problem with each problem)."""

    def __init__(self, kind: str, target: Callable[[Job], Any]) -> None:
        self.kind = kind
        self._target = target
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._lines: list[str] = []
        self._losses: list[tuple[int, float]] = []
        self._step = self._total = 0
        self._state = "running"
        self._result: Any = None
        self._error: str | None = None
        self._started = time.time()
        self._finished: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"gensim-{kind}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            result = self._target(self)
        except Exception as e:  # the job's outcome, shown on the page; never lost in a thread
            if type(e).__name__.endswith("Cancelled"):
                state, error = "cancelled", str(e)
            else:
                state = "failed"
                error = "; ".join(str(p) for p in e.problems) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            with self._lock:
                self._state, self._error, self._finished = state, error, time.time()
            return
        with self._lock:
            self._state, self._result, self._finished = "done", result, time.time()

    # -- reporting, from the job's thread --
    def emit(self, line: str) -> None:
        with self._lock:
            self._lines.append(str(line))

    def on_step(self, step: int, total: int) -> None:
        with self._lock:
            self._step, self._total = step, total

    def on_loss(self, step: int, loss: float) -> None:
        with self._lock:
            self._losses.append((step, loss))

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- control, from anywhere --
    def cancel(self) -> None:
        """Ask the job to stop at its next step."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> JobStatus:
        self._thread.join(timeout)
        return self.status()

    def status(self) -> JobStatus:
        with self._lock:
            return JobStatus(self.kind, self._state, list(self._lines), self._step, self._total, list(self._losses),
                             self._result, self._error, self._started, self._finished)
