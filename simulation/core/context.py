"""What an agent's step sees: its inbox, the LLM, embeddings, the world, and ways to act."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import jinja2
import numpy as np

from ..config.models import LLMSettings
from ..llm.agent_llm import AgentLLM
from ..llm.routing import ModelRouting
from ..memory.tokens import TokenCounter
from ..population.build import agent_id
from .records import Action, Message


@dataclass
class GroupServices:
    """Shared by every agent of a group: clients, the world view, prompts, seed."""

    llm_client: Any
    embeddings: Any
    llm_settings: LLMSettings
    world: Any
    tokens: TokenCounter
    seed: int
    prompts_dir: Path | None = None
    intervention: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # agents per type in the whole run
    routing: ModelRouting = field(default_factory=ModelRouting)  # which model answers which agent
    id_digits: int | None = None  # simulation.id_digits
    _jinja: jinja2.Environment | None = field(default=None, repr=False)

    def template(self, name: str) -> jinja2.Template:
        """The prompt template ``name`` from the scenario's ``prompts/`` (compiled once per group)."""
        if self._jinja is None:
            loader = jinja2.FileSystemLoader(str(self.prompts_dir)) if self.prompts_dir else jinja2.DictLoader({})
            self._jinja = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined,
                                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
        return self._jinja.get_template(name)


def agent_rng(seed: int, agent_id: str, round_: int, phase: str) -> random.Random:
    """The one source of randomness in a step, derived from the run seed: same inputs, same draws."""
    return random.Random(f"{seed}:{agent_id}:{round_}:{phase}")


W = TypeVar("W")


class StepContext(Generic[W]):
    """One agent in one phase of one round. Effects are buffered and applied when the phase ends.

    ``W`` is the type of the scenario's world view (what ``Environment.world()`` returns): annotate a
    step as ``async def act(self, ctx: StepContext[JobBoard])`` and ``ctx.world`` is typed.
    """

    __slots__ = ("agent", "round", "phase", "inbox", "services", "messages", "actions", "_rng", "_llm", "_linked")

    def __init__(self, agent: Any, round_: int, phase: str, inbox: list[Message], services: GroupServices):
        self.agent = agent
        self.round = round_
        self.phase = phase
        self.inbox: list[Message] = inbox
        self.services = services
        self._llm: AgentLLM | None = None
        self.messages: list[Message] = []
        self.actions: list[Action] = []
        self._rng: random.Random | None = None
        self._linked: set[int] = set()

    @property
    def rng(self) -> random.Random:
        """The step's seeded random generator: the same draws on every re-run and replay."""
        if self._rng is None:
            self._rng = agent_rng(self.services.seed, self.agent.id, self.round, self.phase)
        return self._rng

    @property
    def llm(self) -> AgentLLM:
        """The LLM, bound to this agent, round and phase (every call is tagged for recording and replay)."""
        if self._llm is None:
            s = self.services
            a = self.agent
            route = functools.partial(s.routing.model_for, a.id, a.agent_type) if s.routing.scoped() else None
            self._llm = AgentLLM(s.llm_client, s.llm_settings, a.id, self.round, self.phase, s.seed,
                                 s.routing.model_for(a.id, a.agent_type), route)
        return self._llm

    @property
    def world(self) -> W:
        """The environment's read-only world view, shared by every agent of the group."""
        return self.services.world

    @property
    def tokens(self) -> TokenCounter:
        """The token counter prompts and memory budgets are measured with."""
        return self.services.tokens

    @property
    def intervention(self) -> str | None:
        """The researcher's news line in force this round, or None."""
        return self.services.intervention

    def random_agent(self, agent_type: str, exclude_self: bool = True) -> str | None:
        """A seeded random agent of ``agent_type`` anywhere in the run (any group, any host)."""
        n = self.services.counts.get(agent_type, 0)
        for _ in range(8):
            if n == 0 or (n == 1 and exclude_self and self.agent.agent_type == agent_type):
                return None
            other = agent_id(agent_type, self.rng.randrange(n), n, self.services.id_digits)
            if not (exclude_self and other == self.agent.id):
                return other
        return None

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (batched with other agents' requests, recorded for replay)."""
        return await self.services.embeddings.embed(texts)

    def send(self, to: str, kind: str, **data: Any) -> None:
        """Send a :class:`Message` to agent ``to``: in its inbox during the next phase only.

        ``data`` is the scenario's own fields: ``m.data["text"]`` in the inbox.
        """
        self.messages.append(Message(self.agent.id, to, kind, data))

    def act(self, action: str, valid: bool = True, calls: list[str] | None = None, **data: Any) -> None:
        """Record an action (what the agent did) in the run store.

        It is linked to the LLM call(s) of this step that produced it: by default the oldest not yet
        linked call named like the action (or, when all are linked, the latest: several actions from
        one answer); ``calls`` names them when the call's name differs (``calls=["job_count"]``).
        """
        linked: list[int] = []
        made = self._llm.made if self._llm is not None else []
        for name in calls or [action]:
            mine = [c for c in made if c[1] == name]
            free = [c for c in mine if c[0] not in self._linked]
            pick = free[0] if free else (mine[-1] if mine else None)
            if pick is not None:
                linked.append(pick[0])
                self._linked.add(pick[0])
        self.actions.append(Action(self.agent.id, action, valid, data, len(self.actions), tuple(linked)))

    def render(self, template: str, **variables: Any) -> str:
        """Render a prompt template; ``agent``, ``profile`` and ``intervention`` are always given."""
        return self.services.template(template).render(agent=self.agent, profile=self.agent.profile,
                                                       intervention=self.intervention, **variables)

    def messages_for(self, system: str, user: str) -> list[dict[str, str]]:
        """Chat messages with the static part first (prefix-cache friendly)."""
        if self.intervention:
            user = f"News for everyone: {self.intervention}\n\n{user}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
