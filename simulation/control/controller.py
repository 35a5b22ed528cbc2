"""One live run owned by a long-lived process (the web interface's server): start, pause, resume, stop,
watch, interview, intervene, change an attribute, deploy an adapter.

The run itself is :func:`simulation.runner.run_simulation`, the function ``gensim run`` calls, on its own
event loop in a background thread; every control call is handed to that loop, so it takes effect where
the simulator allows (an intervention or a deployment from the next round on, a pause before the next
round). A run whose process dies is an ordinary interrupted run folder: ``gensim run --resume`` finishes it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..core.errors import RunStopped
from ..core.simulator import Simulator
from ..runner import Interrupted, RunOptions, run_simulation


@dataclass(frozen=True)
class LiveStatus:
    """What a live run is doing now."""

    state: str
    run_dir: Path | None = None
    round: int = 0  # rounds finished
    rounds: int = 0
    phase: str | None = None  # the phase in progress
    phase_no: int = 0  # its place in the round (1 for the round's first phase)
    round_started: float | None = None  # when the round in progress began (time.time())
    steps: tuple[int, int] = (0, 0)  # (done, scheduled) agent steps of the phase in progress
    started: float | None = None  # when the run was started
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()  # server start lines, while the embedded servers come up

    @property
    def since_start_s(self) -> float | None:
        return None if self.started is None else time.time() - self.started

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "pausing", "paused", "stopping")


class ControlError(RuntimeError):
    """A control call that cannot be done now (no live run, one already running...)."""


class RunController:
    """Owns at most one live run at a time; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Simulator | None = None
        self._status = LiveStatus("idle")
        self._pause_requested = False

    # -- status --
    def status(self) -> LiveStatus:
        with self._lock:
            st = self._status
            sim = self._sim
        if sim is not None and st.active:
            state = st.state
            if state == "running" and sim.pause_requested:
                state = "pausing" if sim.in_round else "paused"
            st = replace(st, round=sim.round, state=state, steps=sim.phase_steps if st.phase else (0, 0))
        return st

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    # -- start and stop --
    def start(self, opts: RunOptions) -> None:
        """Start a run (or a resume, replay or fork) in the background; returns at once."""
        with self._lock:
            if self._status.active:
                raise ControlError(f"a run is already live ({self._status.run_dir}); stop it first")
            self._status = LiveStatus("starting", started=time.time())
            self._sim = None
            self._pause_requested = False
        opts = replace(opts, hooks={k: list(v) for k, v in opts.hooks.items()}, progress=False)
        opts.hooks.setdefault("before_phase", []).append(self._on_phase)
        opts.hooks.setdefault("after_round", []).append(self._on_round)
        opts.on_simulator = self._on_simulator
        opts.on_line = self._on_line
        self._thread = threading.Thread(target=self._main, args=(opts,), name="gensim-run", daemon=True)
        self._thread.start()

    def _main(self, opts: RunOptions) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            summary = loop.run_until_complete(run_simulation(opts))
            self._set(state="finished", summary=summary, phase=None)
        except Interrupted as e:
            self._set(state="stopped", summary=e.summary, phase=None, error=None)
        except ConfigError as e:
            self._set(state="failed", error=str(e), phase=None)
        except RunStopped as e:
            self._set(state="failed", error=str(e), phase=None)
        except Exception as e:  # the page shows it; the run's own log has the traceback
            self._set(state="failed", error=f"{type(e).__name__}: {e}", phase=None)
            traceback.print_exc()
        finally:
            with self._lock:
                self._loop = None
            loop.close()

    def _on_simulator(self, sim: Simulator) -> None:
        with self._lock:
            self._sim = sim
            sim.track_steps = True
            self._status = replace(self._status, state="running", run_dir=sim.run_dir, rounds=sim.simulation.rounds)
            if self._pause_requested:
                sim.pause()

    def _on_line(self, line: str) -> None:
        with self._lock:
            self._status = replace(self._status, lines=(*self._status.lines, line)[-20:])

    async def _on_phase(self, sim: Simulator, r: int, phase: Any) -> None:
        with self._lock:
            first = self._status.round_started is None or self._status.phase is None
            self._status = replace(self._status, phase=getattr(phase, "name", str(phase)),
                                   phase_no=1 if first else self._status.phase_no + 1,
                                   round_started=time.time() if first else self._status.round_started)

    async def _on_round(self, sim: Simulator, r: int) -> None:
        self._set(round=r, phase=None, phase_no=0, round_started=None)

    def wait(self, timeout: float | None = None) -> LiveStatus:
        """Block until the live run ends (or ``timeout`` seconds pass); returns its status."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self.status()

    def pause(self) -> None:
        """Hold the run before its next round."""
        with self._lock:
            self._require_active()
            self._pause_requested = True
            sim = self._sim
        if sim is not None:
            self._call_soon(sim.pause)

    def resume(self) -> None:
        """Let a paused run go on."""
        with self._lock:
            self._require_active()
            self._pause_requested = False
            sim = self._sim
        if sim is not None:
            self._call_soon(sim.resume_running)

    def stop(self) -> None:
        """End the run after its round (checkpointed, resumable), as Ctrl-C does."""
        with self._lock:
            self._require_active()
            sim = self._sim
            self._status = replace(self._status, state="stopping")
        if sim is None:
            raise ControlError("the run is still starting; stop it once its first round begins")

        def stop_now() -> None:
            sim.request_stop("stopped from the web interface")
            sim.resume_running()  # a paused run must wake up to stop

        self._call_soon(stop_now)

    # -- acting on the live run --
    def interview(self, agent_id: str, question: str, timeout: float = 600) -> str:
        """Ask a live agent a question (it answers in character; its memory is untouched)."""
        sim = self._live_sim()
        if agent_id not in sim.where:
            raise KeyError(f"no agent '{agent_id}' in this run")
        return self._await(sim.interview(agent_id, question), timeout)

    def intervene(self, text: str | None) -> int:
        """Set (or with None clear) the global intervention; returns the round it starts in."""
        sim = self._live_sim()
        self._await(_call(sim.set_intervention, text), 30)
        return sim.round + 1

    def set_attribute(self, agent_id: str, path: str, value: Any) -> int:
        """Change one agent's profile field from the next round on; returns that round."""
        from ..schedule import attribute_problem

        sim = self._live_sim()
        if agent_id not in sim.where:
            raise KeyError(f"no agent '{agent_id}' in this run")
        why = attribute_problem(sim.store.profile(agent_id), path, value)
        if why:
            raise ValueError(f"{agent_id}.{path}: {why}")
        self._await(sim.set_attribute(agent_id, path, value), 60)
        return sim.round + 1

    def deploy(self, path: str | Path, share: float = 1.0, types: list[str] | None = None,
               agents: list[str] | None = None, name: str | None = None, timeout: float = 900) -> dict[str, Any]:
        """Put a trained adapter into the live run from the next round on (see ``Simulator.deploy_adapter``)."""
        from ..training.manifest import read_manifest

        read_manifest(Path(path), "adapter")
        sim = self._live_sim()
        dep = self._await(sim.deploy_adapter(path, name=name, agents=agents, share=share, types=types), timeout)
        return {"name": dep.name, "round": dep.round, "mode": dep.mode, "share": dep.share, "seconds": dep.seconds}

    # -- helpers --
    def _require_active(self) -> None:
        if not self._status.active:
            raise ControlError("no live run")

    def _live_sim(self) -> Simulator:
        with self._lock:
            sim, loop = self._sim, self._loop
            active = self._status.active
        if sim is None or loop is None or not active:
            raise ControlError("no live run (start one, or wait until its setup is done)")
        return sim

    def _call_soon(self, fn: Any) -> None:
        loop = self._loop
        if loop is None:
            raise ControlError("no live run")
        loop.call_soon_threadsafe(fn)

    def _await(self, coro: Any, timeout: float) -> Any:
        loop = self._loop
        if loop is None:
            coro.close()
            raise ControlError("no live run")
        fut: Future = asyncio.run_coroutine_threadsafe(coro, loop)
        return fut.result(timeout)


async def _call(fn: Any, *args: Any) -> Any:
    """Run a plain function on the run's loop (the simulator is not thread-safe)."""
    return fn(*args)
