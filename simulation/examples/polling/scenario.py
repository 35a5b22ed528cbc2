"""Polling: the scenario guide's example. Voters answer a poll each round; the town tallies it."""

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from simulation.core import Action, Agent, Environment, Message, Phase, ScenarioSpec, StepContext
from simulation.population import person


class PollParams(BaseModel):
    """The ``scenario:`` section of simulation_config.yml."""

    model_config = ConfigDict(extra="forbid")
    question: str = "Should the town build a new park?"
    options: list[str] = ["yes", "no", "unsure"]


class Voter(Agent):
    """Answers the poll in character, remembers its vote, and tells a neighbour about it."""

    agent_type = "voter"
    __slots__ = ()

    def persona(self, ctx: StepContext) -> str:
        return ctx.render("voter.j2")

    async def vote(self, ctx: StepContext[PollParams]) -> None:
        poll = ctx.world
        memory = await self.memory.recall(ctx)
        prompt = ctx.render("vote.j2", question=poll.question, options=poll.options, memory=memory)
        answer, valid = await ctx.llm.choose("vote", ctx.messages_for(self.persona(ctx), prompt), poll.options)
        ctx.act("vote", valid=valid, answer=answer)
        if answer is None:  # no valid answer: recorded as no decision, and nothing to tell anyone
            return
        neighbour = ctx.random_agent("voter")
        if neighbour:
            ctx.send(neighbour, "opinion", answer=answer)
        await self.memory.add(ctx, f"In round {ctx.round} I voted {answer}.")

    async def listen(self, ctx: StepContext[PollParams]) -> None:
        for m in ctx.inbox:
            await self.memory.add(ctx, f"A neighbour told me they voted {m.data['answer']}.", importance=2.0)
        ctx.act("heard", opinions=len(ctx.inbox))


class Town(Environment):
    """Two phases a round: everyone votes, then hears a neighbour. Metrics: the share of each answer."""

    def __init__(self, params: dict[str, Any], seed: int):
        super().__init__(params, seed)
        self.poll = PollParams.model_validate(params)
        self.tally: Counter[str] = Counter()

    def world(self) -> PollParams:
        return self.poll

    def phases(self, round_: int) -> list[Phase]:
        return [Phase("vote", "voter", "vote"), Phase("listen", "voter", "listen", trigger="inbox")]

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        if phase.name == "vote":
            self.tally = Counter(a.data["answer"] for a in actions if a.action == "vote")

    def metrics(self, round_: int) -> dict[str, float]:
        total = sum(self.tally.values()) or 1
        out = {f"share_{o}": self.tally[o] / total for o in self.poll.options}
        out["share_no_decision"] = self.tally[None] / total
        return out


def generate_voter(seed: int, index: int) -> dict[str, Any]:
    profile, _ = person("voter", seed, index)
    return profile


SCENARIO = ScenarioSpec(name="polling", agent_classes={"voter": Voter}, environment=Town,
                        params_model=PollParams, generators={"voter": generate_voter},
                        key_metrics=["share_yes", "share_no", "share_unsure", "share_no_decision"])
