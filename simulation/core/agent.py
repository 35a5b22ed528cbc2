"""The base agent: identity, profile, plain-data state and memory; interviews in character."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..memory import AgentMemory


class Agent:
    """Subclass per role; write one ``async def <phase method>(self, ctx)`` per phase it acts in.

    State lives in ``self.state`` (a JSON/msgpack-able dict) and in ``self.memory``; nothing else
    survives a checkpoint, except profile changes made by interventions (``set_attribute``).
    """

    agent_type: ClassVar[str] = "agent"
    __slots__ = ("id", "profile", "state", "memory", "patch")

    def __init__(self, agent_id: str, profile: dict[str, Any], memory: AgentMemory):
        self.id = agent_id
        self.profile = profile
        self.memory = memory
        self.patch: dict[str, Any] = {}  # dotted profile path -> value set by an intervention
        self.state: dict[str, Any] = self.initial_state()

    def initial_state(self) -> dict[str, Any]:
        """The agent's ``self.state`` before round 1 (override to add your own keys)."""
        return {}

    @property
    def name(self) -> str:
        """The profile's ``name``, or the id when the profile has none."""
        return str(self.profile.get("name", self.id))

    def persona(self, ctx: Any) -> str:
        """The system prompt that makes the model speak as this agent (scenarios override it)."""
        return f"You are {self.name}. Your profile: {json.dumps(self.profile, ensure_ascii=False)}"

    async def interview(self, ctx: Any, question: str) -> str:
        """Answer a researcher's question in character. Reads memory, never writes it."""
        memory = await self.memory.recall(ctx, query=question)
        user = (f"What you remember:\n{memory}\n\n" if memory else "") + \
            f"A researcher interviews you: {question}\nAnswer as yourself, briefly."
        return await ctx.llm.chat("interview", ctx.messages_for(self.persona(ctx), user))

    def set_attribute(self, path: str, value: Any) -> None:
        """Change a profile field (``traits.patience``) between rounds; it survives checkpoints."""
        node = self.profile
        *parents, leaf = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise KeyError(f"{self.id}: profile has no section '{key}' (in '{path}')")
            node = node[key]
        node[leaf] = value
        self.patch[path] = value

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this agent: state, memory and intervention patches."""
        out = {"state": self.state, "memory": self.memory.get_state()}
        if self.patch:
            out["patch"] = self.patch
        return out

    def set_state(self, s: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (patches are applied again)."""
        self.state = s["state"]
        self.memory.set_state(s["memory"])
        for path, value in s.get("patch", {}).items():
            self.set_attribute(path, value)
