"""The environment: the only way agents affect each other, run by the driver."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .phase import Phase
from .records import Action, Message


class Environment:
    """Scenario environments subclass this.

    The driver calls ``setup`` once, then per round ``phases`` and, after each phase, ``route``
    (which messages reach whom) and ``observe`` (what the phase changed), and ``metrics`` at the
    round's end. ``world()`` is the read-only view agent steps may query (e.g. a search index).
    """

    def __init__(self, params: dict[str, Any], seed: int):
        self.params = params
        self.seed = seed

    async def setup(self, sim: Any) -> None:
        """Run once before round 1: build the world from ``sim.profiles(type)`` and embeddings."""
        return None

    def world(self) -> Any:
        """The read-only view every agent group receives as ``ctx.world`` (it must pickle)."""
        return None

    def world_update(self, round_: int) -> Any:
        """Data every group's world view receives (``world.update(data)``) before round ``round_``; None: no change."""
        return None

    def phases(self, round_: int) -> list[Phase]:
        """The phases of round ``round_``, in order."""
        raise NotImplementedError

    def route(self, phase: Phase, messages: list[Message]) -> dict[str, list[Message]]:
        """Who receives what in the next phase: by default every message reaches its ``to``."""
        inbox: dict[str, list[Message]] = defaultdict(list)
        for m in messages:
            inbox[m.to].append(m)
        return inbox

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        """What the phase changed: its recorded actions (:class:`Action`, read by field name) and messages."""
        return None

    def metrics(self, round_: int) -> dict[str, float]:
        """Numbers recorded for the round that just ended (the ``metrics`` table)."""
        return {}

    def summary(self) -> dict[str, Any]:
        """What the environment adds to the run's final summary."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the environment (plain data)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        return None
