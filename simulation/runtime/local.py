"""The in-process runtime: group hosts live in the driver's event loop (the default on one machine)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ..core.phase import Phase
from .base import GroupCall, GroupLost, Runtime, host_method
from .host import GroupHost, GroupSpec, PhaseOutput


class LocalRuntime(Runtime):
    """Hosts in this process; ``call`` is a method call, ``gather`` an ``asyncio.gather``."""

    name = "local"

    def __init__(self, servers: int = 1) -> None:
        self.servers = servers
        self.hosts: list[GroupHost] = []

    def connect(self) -> int:
        return self.servers

    @property
    def n_groups(self) -> int:
        return len(self.hosts)

    async def start(self, specs: list[GroupSpec]) -> None:
        self.hosts = [GroupHost(s) for s in specs]

    async def _one(self, c: GroupCall) -> Any:
        out = getattr(self.hosts[c.index], host_method(c.method))(*c.args)
        return await out if inspect.isawaitable(out) else out

    async def gather(self, calls: list[GroupCall]) -> list[Any]:
        return list(await asyncio.gather(*(self._one(c) for c in calls)))

    async def run_phase(self, phase: Phase, round_: int, inboxes: list[dict[str, list]],
                        on_step: Callable[[int], None] | None = None) -> list[PhaseOutput | GroupLost]:
        return list(await asyncio.gather(*(h.run_phase(phase, round_, inboxes[i], on_step)
                                           for i, h in enumerate(self.hosts))))

    async def replace(self, index: int, spec: GroupSpec) -> None:
        await self.hosts[index].aclose()
        self.hosts[index] = GroupHost(spec)

    async def close(self) -> None:
        for h in self.hosts:
            await h.aclose()
        self.hosts = []
