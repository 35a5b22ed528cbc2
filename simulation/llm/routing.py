"""Which model answers which agent's calls: all agents, a type, or a seeded share (an A/B split).

An assignment may cover some decisions only: an adapter scoped to what it was trained to correct.

A route name is a ``model_configs.json`` ``config_name``, a served model name, or a deployed
adapter's name; ``None`` means the run's default chat model. The split is plain data, so it travels
to every agent group and into checkpoints.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def adapter_route(settings: Any) -> str | None:
    """The route name of ``llm.adapter``: ``llm.adapter_name``, else the adapter folder's name."""
    if not settings.adapter:
        return None
    return settings.adapter_name or Path(settings.adapter).name


def adapter_paths(settings: Any) -> dict[str, str]:
    """Route name -> folder of the adapter ``llm.adapter`` names (empty without one)."""
    name = adapter_route(settings)
    return {name: settings.adapter} if name else {}


def routing_from_settings(settings: Any, seed: int) -> ModelRouting:
    """The routing a run starts with: ``llm.model_by_type``, then ``llm.adapter`` on its share."""
    routing = ModelRouting(seed, None, dict(settings.model_by_type))
    name = adapter_route(settings)
    if name:
        routing.assign(name, settings.adapter_share, list(settings.adapter_types),
                       actions=list(settings.adapter_actions))
    return routing


def routing_with_deployed(settings: Any, seed: int, deployed: list[dict[str, Any]]) -> ModelRouting:
    """The config's routing followed by the assignments deployed while running.

    These are a checkpoint's ``deployed``: what a resumed run, a fork or an interview continues with.
    """
    routing = routing_from_settings(settings, seed)
    routing.assignments += [Assignment.from_data(a) for a in deployed]
    return routing


def ab_unit(seed: int, agent_id: str) -> float:
    """An agent's fixed draw in [0, 1) for share-based splits.

    The same agents stay treated (and the same stay in the control group) across deployments and
    iterations of one run seed.
    """
    d = hashlib.blake2b(f"{seed}:ab:{agent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(d, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Assignment:
    """Agents that use ``model``, for the calls of ``actions`` (all calls when empty).

    Those listed, else those of ``types`` (all types when empty) whose draw falls below ``share``.
    """

    model: str
    share: float = 1.0
    types: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def covers(self, seed: int, agent_id: str, agent_type: str, action: str | None = None) -> bool:
        """Whether this assignment applies to the agent's call of ``action``.

        None is a call of no decision (an interview): a scoped assignment leaves it to the model beneath.
        """
        if self.actions and action not in self.actions:
            return False
        if self.agents:
            return agent_id in self.agents
        if self.types and agent_type not in self.types:
            return False
        return self.share >= 1.0 or ab_unit(seed, agent_id) < self.share

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Assignment:
        """The assignment :func:`dataclasses.asdict` gave (lists back to tuples)."""
        # checkpoints written before actions existed have none: the assignment covered every call
        return cls(data["model"], data["share"], tuple(data["types"]), tuple(data["agents"]),
                   tuple(data.get("actions") or ()))


@dataclass(slots=True)
class ModelRouting:
    """The default model, per-type models, then assignments in order (the last that covers an agent wins)."""

    seed: int = 0
    default: str | None = None
    by_type: dict[str, str] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)

    def model_for(self, agent_id: str, agent_type: str, action: str | None = None) -> str | None:
        """The model the agent's call of ``action`` names: the last covering assignment, else type's or default."""
        for a in reversed(self.assignments):
            if a.covers(self.seed, agent_id, agent_type, action):
                return a.model
        return self.by_type.get(agent_type, self.default)

    def scoped(self) -> bool:
        """Whether some assignment covers only some decisions (the model then depends on the call)."""
        return any(a.actions for a in self.assignments)

    def names(self) -> set[str]:
        """Every route name in use (each must be served by some endpoint)."""
        out = {a.model for a in self.assignments} | set(self.by_type.values())
        return out | ({self.default} if self.default else set())

    def _covering(self) -> int | None:
        """Index of the last assignment that covers every agent: everything before it is shadowed."""
        for i in range(len(self.assignments) - 1, -1, -1):
            a = self.assignments[i]
            if a.share >= 1.0 and not a.types and not a.agents and not a.actions:
                return i
        return None

    def default_needed(self) -> bool:
        """Whether some agent may still use the default model."""
        return self._covering() is None and self.default is None

    def used_names(self) -> set[str]:
        """Route names some agent may use now."""
        i = self._covering()
        if i is not None:
            return {a.model for a in self.assignments[i:]}
        return self.names()

    def assign(self, model: str, share: float = 1.0, types: list[str] | None = None,
               agents: list[str] | None = None, actions: list[str] | None = None) -> Assignment:
        """Add an assignment (it overrides earlier ones for the agents and calls it covers); returns it."""
        a = Assignment(model, share, tuple(types or ()), tuple(agents or ()), tuple(actions or ()))
        self.assignments.append(a)
        return a

    def to_data(self) -> dict[str, Any]:
        """Plain data, for checkpoints and for sending to groups."""
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ModelRouting:
        """The routing :meth:`to_data` gave."""
        return cls(data.get("seed", 0), data.get("default"), dict(data.get("by_type") or {}),
                   [Assignment.from_data(a) for a in data.get("assignments") or []])
