"""Typed records that cross the driver/group boundary and reach the run store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
class Message:
    """One message between agents (``ctx.send``) or from the environment (``Environment.route``).

    It is in its recipient's inbox during the next phase only (``Environment.route`` decides), and
    gone after it: what an agent should keep, it puts in its state or memory. ``data`` holds the
    scenario's own fields (``ctx.send(to, "offer", job=...)`` gives ``data == {"job": ...}``).
    """

    sender: str
    to: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """``m["from"]``, ``m["to"]``, ``m["kind"]`` or a data field: the older dict form still reads."""
        if key == "from":
            return self.sender
        if key in ("to", "kind"):
            return getattr(self, key)
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A data field, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default


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
