"""Typed records that cross the driver/group boundary and reach the run store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class Action(NamedTuple):
    """One recorded action.

    ``valid`` is False when the model gave no valid answer for it; ``seq`` numbers the agent's
    actions within one step; ``calls`` are the ``seq`` numbers of the agent's LLM calls in that
    step that produced it (``llm_calls`` rows with the same round, phase and agent).
    """

    agent_id: str
    action: str
    valid: bool
    data: dict[str, Any]
    seq: int = 0
    calls: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Deployment:
    """One swap, as recorded: from which round on, what, how, to whom, and how long it took."""

    round: int
    name: str
    path: str
    mode: str
    seconds: float
    share: float = 1.0
    types: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
