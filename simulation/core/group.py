"""An agent group: a set of agents that run phases together (one per process or Ray actor)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from ..config.models import ActivationConfig, MemoryConfig
from ..llm.cache import ReplayMiss
from ..llm.pool import EndpointOutage
from ..llm.types import LLMError
from ..memory import AgentMemory
from .agent import Agent
from .context import GroupServices, StepContext
from .errors import StepError
from .phase import Phase
from .records import Action, Message


@dataclass
class PhaseResult:
    """What a phase produced in one group; applied by the driver when the phase ends."""

    messages: list[Message] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    steps: int = 0
    failed: int = 0  # steps the model's side failed (no answer within the retries)
    errors: list[StepError] = field(default_factory=list)  # steps whose own code raised: the run stops
    outage: str | None = None  # no endpoint answered within the outage limit: the run stops


class AgentGroup:
    """Hosts agents and runs one phase for all of them with bounded concurrency."""

    def __init__(self, services: GroupServices, memory_cfg: MemoryConfig, concurrency: int = 256):
        self.services = services
        self.memory_cfg = memory_cfg
        self.concurrency = concurrency
        self.agents: dict[str, Agent] = {}
        self.by_type: dict[str, list[Agent]] = {}

    def add_agents(self, cls: type[Agent], items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Create agents of ``cls`` from ``(agent_id, profile)`` pairs; returns how many."""
        n = 0
        lst = self.by_type.setdefault(cls.agent_type, [])
        for agent_id, profile in items:
            agent = cls(agent_id, profile, AgentMemory(self.memory_cfg))
            self.agents[agent_id] = agent
            lst.append(agent)
            n += 1
        return n

    def scheduled(self, phase: Phase, inboxes: dict[str, list], active: set[str] | None) -> list[Agent]:
        """The group's agents that act in ``phase``: of its type, active, and (for inbox phases) with mail."""
        agents = self.by_type.get(phase.agent_type, [])
        if phase.trigger == "inbox":
            return [a for a in agents if a.id in inboxes]
        if active is None:
            return agents
        return [a for a in agents if a.id in active]

    async def run_phase(self, phase: Phase, round_: int, inboxes: dict[str, list], active: set[str] | None,
                        on_step: Callable[[int], None] | None = None) -> PhaseResult:
        """Run every scheduled agent's step concurrently; effects are collected, not applied."""
        todo = self.scheduled(phase, inboxes, active)
        result = PhaseResult()
        it = iter(todo)

        async def worker() -> None:
            for agent in it:
                ctx = StepContext(agent, round_, phase.name, inboxes.get(agent.id, []), self.services)
                try:
                    await getattr(agent, phase.method)(ctx)
                    result.messages += ctx.messages
                    result.actions += ctx.actions
                except EndpointOutage as e:
                    result.outage = str(e)
                except ReplayMiss as e:  # the run no longer follows its recording: a divergence, not a flake
                    result.errors.append(StepError.from_exception(agent.id, phase.name, e, replay_miss=True))
                except LLMError as e:  # the model's side failed: counted, and the round goes on
                    logger.warning("agent {} failed in {}: {}: {}", agent.id, phase.name, type(e).__name__, e)
                    result.failed += 1
                    result.actions.append(Action(agent.id, "llm_failure", False, {"error": f"{type(e).__name__}: {e}"},
                                                 len(ctx.actions)))
                except Exception as e:  # a bug in scenario or framework code: the run stops after the phase
                    result.errors.append(StepError.from_exception(agent.id, phase.name, e))
                result.steps += 1
                if on_step is not None:
                    on_step(1)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(todo)) or 0)))
        return result

    def get_states(self) -> dict[str, Any]:
        """Every agent's checkpoint state, by id."""
        return {aid: a.get_state() for aid, a in self.agents.items()}

    def set_states(self, states: dict[str, Any]) -> None:
        """Restore agents from :meth:`get_states`."""
        for aid, s in states.items():
            self.agents[aid].set_state(s)


def active_set(agents: Iterable[str], activation: ActivationConfig, seed: int, round_: int) -> set[str] | None:
    """Who acts this round: everyone (None), or each agent with its own seeded probability."""
    if activation.mode == "all":
        return None
    return {aid for aid in agents if random.Random(f"{seed}:{aid}:{round_}:activate").random() < activation.probability}


def action_rows(round_: int, phase: str, actions: list[Action]) -> list[tuple]:
    """``actions`` table rows for a phase's recorded actions."""
    return [(round_, phase, a.agent_id, a.action, int(a.valid),
             json.dumps(a.data, ensure_ascii=False, separators=(",", ":")), a.seq,
             json.dumps(list(a.calls)) if a.calls else None)
            for a in actions]
