"""The base agent: identity, profile, plain-data state and memory."""

from __future__ import annotations

from typing import Any, ClassVar

from ..memory import AgentMemory


class Agent:
    """Subclass per role; write one ``async def <phase method>(self, ctx)`` per phase it acts in.

    State lives in ``self.state`` (a JSON/msgpack-able dict) and in ``self.memory``; nothing else
    survives a checkpoint.
    """

    agent_type: ClassVar[str] = "agent"
    __slots__ = ("id", "profile", "state", "memory")

    def __init__(self, agent_id: str, profile: dict[str, Any], memory: AgentMemory):
        self.id = agent_id
        self.profile = profile
        self.memory = memory
        self.state: dict[str, Any] = self.initial_state()

    def initial_state(self) -> dict[str, Any]:
        return {}

    @property
    def name(self) -> str:
        return str(self.profile.get("name", self.id))

    def get_state(self) -> dict[str, Any]:
        return {"state": self.state, "memory": self.memory.get_state()}

    def set_state(self, s: dict[str, Any]) -> None:
        self.state = s["state"]
        self.memory.set_state(s["memory"])
