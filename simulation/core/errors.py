"""Why a run stops early: scenario bugs, too many failed LLM steps, endpoint outages.

A stopped run keeps everything recorded so far; its last checkpoint is the round before the one
that stopped, so ``gensim run --resume RUN_DIR`` redoes that round once the cause is fixed.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path


def migration_hint(e: BaseException) -> str:
    """A note for an exception that scenario code written for an older GenSim raises (see simulation/CHANGELOG.md)."""
    from .records import Action

    if isinstance(e, ValueError) and "values to unpack" in str(e):
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        names = tb.tb_frame.f_locals.values() if tb is not None else ()
        if any(isinstance(v, Action) or isinstance(v, list | tuple) and v and isinstance(v[0], Action) for v in names):
            return (" (an Action is a record of 6 fields since GenSim 0.2: agent_id, action, valid, data, seq, "
                    "calls; read them by name, a.agent_id, a.data, instead of unpacking 4; see simulation/CHANGELOG.md)")
    return ""


@dataclass(frozen=True, slots=True)
class StepError:
    """An exception raised by scenario or framework code in one agent's step."""

    agent_id: str
    phase: str
    where: str  # file:line where it was raised
    error: str  # "KeyError: 'salary'"
    traceback: str
    replay_miss: bool = False  # a replay asked for a call its recording lacks: not a bug in the step

    @classmethod
    def from_exception(cls, agent_id: str, phase: str, e: BaseException, replay_miss: bool = False) -> StepError:
        """The record of an exception raised in ``agent_id``'s step, with where it was raised."""
        frames = traceback.extract_tb(e.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        return cls(agent_id, phase, where, f"{type(e).__name__}: {e}{migration_hint(e)}",
                   "".join(traceback.format_exception(type(e), e, e.__traceback__)), replay_miss)


class RunStopped(RuntimeError):
    """The run stopped before finishing; the message says why and how to go on."""


class ScenarioError(RunStopped):
    """Scenario or framework code raised in an agent step: a bug to fix, not a flaky model."""

    def __init__(self, round_: int, errors: list[StepError], log_file: Path):
        first = errors[0]
        more = f" (and {len(errors) - 1} more step(s))" if len(errors) > 1 else ""
        super().__init__(f"agent {first.agent_id} failed in round {round_} phase {first.phase} at {first.where}: "
                         f"{first.error}{more}; traceback in {log_file}")
        self.errors = errors


class ReplayDiverged(RunStopped):
    """A replay asked for an LLM call its recording does not hold: the run no longer follows it.

    The message names the call's key and the first line where its prompt differs from the
    nearest recorded one (a changed prompt template, intervention or setting, usually).
    """

    def __init__(self, round_: int, errors: list[StepError]):
        first = errors[0]
        more = f" (and {len(errors) - 1} more call(s))" if len(errors) > 1 else ""
        super().__init__(f"round {round_} phase {first.phase}: "
                         f"{first.error.removeprefix('ReplayMiss: ')}{more}")
        self.errors = errors


class SetupError(RunStopped):
    """The scenario's ``Environment.setup`` or ``world()`` raised: a bug to fix before any round runs."""

    def __init__(self, e: BaseException, log_file: Path):
        where = StepError.from_exception("", "setup", e).where
        super().__init__(f"the scenario's setup failed at {where}: {type(e).__name__}: {e}; traceback in {log_file}")


class EnvironmentCodeError(RunStopped):
    """The scenario's environment raised in ``observe``, ``route``, ``metrics``, ``phases`` or ``world_update``."""

    def __init__(self, method: str, round_: int, phase: str | None, e: BaseException, log_file: Path):
        where = StepError.from_exception("", method, e).where
        at = f"round {round_}" + (f" phase {phase}" if phase else "")
        super().__init__(f"the environment's {method} failed in {at} at {where}: {type(e).__name__}: {e}"
                         f"{migration_hint(e)}; traceback in {log_file}")


class FailedStepsExceeded(RunStopped):
    """More steps failed on the model's side in one round than ``simulation.max_failed_step_share`` allows."""


class OutageStop(RunStopped):
    """No endpoint answered for longer than the outage limit; the broken round was not checkpointed."""
