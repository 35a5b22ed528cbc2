"""Chat-room members: each writes only its own messages, when it is its turn."""

from __future__ import annotations

import re
from typing import Any

from simulation.core import Agent, StepContext

SPEAKER_LABEL = re.compile(r"^\s*[A-Z][\w'-]+(?: [A-Z][\w'-]+)?\s*:\s*")


def own_words(text: str, me: str, others: list[str]) -> str:
    """Keep only this member's message: drop a leading "Name:" label (the model imitating the
    transcript, whoever it names) and cut where another member's line would begin (a small model
    likes to write the whole conversation)."""
    text = SPEAKER_LABEL.sub("", text.strip(), count=1)
    cut = len(text)
    for name in others:
        for label in (f"\n{name}:", f"\n{name.split()[0]}:", f" {name.split()[0]}:"):
            i = text.find(label)
            if i != -1:
                cut = min(cut, i)
    return text[:cut].strip().splitlines()[0] if text[:cut].strip() else "..."


class MemberAgent(Agent):
    """Joins the room at the start of a session and speaks when the room gives it the turn."""

    agent_type = "member"
    __slots__ = ()

    def initial_state(self) -> dict[str, Any]:
        return {"sessions": 0, "messages": 0}

    def persona(self, ctx: StepContext[dict[str, Any]]) -> str:
        return ctx.render("member_system.j2")

    async def join(self, ctx: StepContext[dict[str, Any]]) -> None:
        self.state["sessions"] += 1
        ctx.act("join", room=ctx.world["room_of"][self.id])

    async def speak(self, ctx: StepContext[dict[str, Any]]) -> None:
        turn = next(m for m in ctx.inbox if m.kind == "turn")
        others = [n for n in turn.data["present"] if n != self.name]
        memory = await self.memory.recall(ctx)
        raw = await ctx.llm.chat("speak", ctx.messages_for(self.persona(ctx), ctx.render(
            "speak.j2", transcript=turn.data["transcript"], present=others, memory=memory,
            topic=ctx.world["params"].topic)), max_tokens=ctx.world["params"].message_max_tokens)
        text = own_words(raw, self.name, others)
        self.state["messages"] += 1
        ctx.act("say", calls=["speak"], room=turn.sender, text=text, trimmed=text != raw.strip())
        await self.memory.add(ctx, f"In the {turn.sender} chat I said: {text}", importance=3.0)
