"""A phase: one step of a round in which agents of one type act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Phase:
    """Agents of ``agent_type`` run ``method(ctx)``.

    ``trigger="active"``: every agent active this round; ``"inbox"``: only agents that received
    messages in an earlier phase of the round (they answer whether or not they are active).
    Messages an agent sends are delivered when the phase ends, so a phase can be re-run alone.
    """

    name: str
    agent_type: str
    method: str
    trigger: Literal["active", "inbox"] = "active"
