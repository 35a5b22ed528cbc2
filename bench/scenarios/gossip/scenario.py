"""Gossip: agents that act without any LLM, to measure the engine's own ceiling (bench/scale.py)."""

from typing import Any

from simulation.core import Action, Agent, Environment, Message, Phase, ScenarioSpec, StepContext


class Person(Agent):
    """Tells a seeded-random acquaintance something; counts what it heard."""

    agent_type = "person"
    __slots__ = ()

    def initial_state(self) -> dict[str, Any]:
        return {"heard": 0, "told": 0}

    async def tell(self, ctx: StepContext) -> None:
        peer = ctx.random_agent("person", exclude_self=False)
        ctx.send(peer, "rumour")
        self.state["told"] += 1

    async def hear(self, ctx: StepContext) -> None:
        self.state["heard"] += len(ctx.inbox)


class Town(Environment):
    def __init__(self, params: dict[str, Any], seed: int):
        super().__init__(params, seed)
        self.delivered = 0

    def phases(self, round_: int) -> list[Phase]:
        return [Phase("tell", "person", "tell"), Phase("hear", "person", "hear", "inbox")]

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        if phase.name == "tell":
            self.delivered = len(messages)

    def metrics(self, round_: int) -> dict[str, float]:
        return {"rumours": float(self.delivered)}


SCENARIO = ScenarioSpec(name="gossip", agent_classes={"person": Person}, environment=Town,
                        generators={"person": lambda seed, i: {}})
