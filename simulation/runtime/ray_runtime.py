"""The Ray runtime: one async actor per agent-server slot, anywhere in a Ray cluster.

``bash simulation/launch_server.sh N PORT SCENARIO`` gives each host ``N`` units of the custom
resource ``gensim_slot``; the driver places one :class:`GroupActor` on each unit. Without a
cluster, the driver starts a private Ray instance on 127.0.0.1 with ``simulation.servers`` slots.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import ray
import ray._private.services as services
from loguru import logger

from ..core.phase import Phase
from ..services.agent_servers import SLOT, launched_address
from ..services.ray_node import keep_loopback
from .base import GroupCall, GroupLost, Runtime, host_method
from .host import GroupHost, GroupSpec, PhaseOutput


@ray.remote(num_cpus=0, max_restarts=0)
class GroupActor:
    """An agent server: a :class:`GroupHost` in its own process."""

    def __init__(self, spec: GroupSpec):
        self.host = GroupHost(spec)

    async def call(self, method: str, *args: Any) -> Any:
        out = getattr(self.host, method)(*args)
        return await out if asyncio.iscoroutine(out) else out


def _lost(index: int, e: BaseException) -> GroupLost:
    return GroupLost(index, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")


class RayRuntime(Runtime):
    """Group hosts as Ray actors; every call for all groups is issued before any is awaited."""

    name = "ray"

    def __init__(self, address: str | None = None, servers: int = 2, cluster_share: float = 1.0):
        self.address = address or launched_address()
        self.servers = servers
        self.cluster_share = cluster_share
        self.actors: list[Any] = []

    @property
    def n_groups(self) -> int:
        return len(self.actors)

    def connect(self) -> int:
        """Join the cluster (or start a private one on loopback); return the number of slots this run
        takes: on a cluster, its share of them (floored, at least one), so that parallel runs each
        sharing it never hold part of the slots another needs."""
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            os.environ.setdefault("MALLOC_ARENA_MAX", "2")  # inherited by a private instance's workers
            services.resolve_ip_for_localhost = keep_loopback  # a loopback cluster stays on loopback
            if self.address:
                host = self.address.rsplit(":", 1)[0]
                # a cluster on loopback: the driver must find its raylet at 127.0.0.1, not the host's address
                extra = {"_node_ip_address": host} if host.startswith("127.") or host == "localhost" else {}
                ray.init(address=self.address, log_to_driver=False, logging_level="warning", **extra)
            else:
                ray.init(address="local", num_cpus=max(2, self.servers), resources={SLOT: self.servers}, include_dashboard=False,
                         log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1")
        slots = int(ray.cluster_resources().get(SLOT, 0))
        if slots < 1:
            raise RuntimeError(f"the Ray cluster at {self.address} offers no '{SLOT}' resource: "
                               "start agent servers with simulation/launch_server.sh")
        return max(1, int(slots * self.cluster_share + 1e-9)) if self.address else slots

    def _actor(self, spec: GroupSpec) -> Any:
        return GroupActor.options(resources={SLOT: 1}, scheduling_strategy="SPREAD",
                                  max_concurrency=100_000).remote(spec)

    async def start(self, specs: list[GroupSpec]) -> None:
        self.actors = [self._actor(s) for s in specs]
        nodes = await self.gather([GroupCall(i, GroupHost.stats) for i in range(len(specs))])  # waits until all are up
        logger.info("{} agent servers on {} host process(es)", len(nodes), len({n["pid"] for n in nodes}))

    async def gather(self, calls: list[GroupCall]) -> list[Any]:
        refs = [self.actors[c.index].call.remote(host_method(c.method), *c.args) for c in calls]
        out = await asyncio.gather(*refs, return_exceptions=True)
        for c, r in zip(calls, out, strict=True):
            if isinstance(r, ray.exceptions.RayActorError):
                raise _lost(c.index, r)
            if isinstance(r, BaseException):
                raise r
        return list(out)

    async def run_phase(self, phase: Phase, round_: int, inboxes: list[dict[str, list]],
                        on_step: Callable[[int], None] | None = None) -> list[PhaseOutput | GroupLost]:
        refs = [a.call.remote(host_method(GroupHost.run_phase), phase, round_, inboxes[i])
                for i, a in enumerate(self.actors)]

        async def one(i: int, ref: Any) -> PhaseOutput | GroupLost:
            try:
                out: PhaseOutput = await ref
            except ray.exceptions.RayActorError as e:
                return _lost(i, e)
            if on_step is not None:
                on_step(out.steps)
            return out

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(refs))))

    async def replace(self, index: int, spec: GroupSpec) -> None:
        try:
            ray.kill(self.actors[index], no_restart=True)
        except Exception:  # already gone
            pass
        self.actors[index] = self._actor(spec)
        await self.call(index, GroupHost.stats)

    def share(self, value: Any) -> Any:
        return ray.put(value)

    async def close(self) -> None:
        if self.actors:
            try:
                await asyncio.wait_for(self.broadcast(GroupHost.aclose), 10)
            except Exception:  # a dead actor must not keep the run from finishing
                pass
            for a in self.actors:
                ray.kill(a, no_restart=True)
        self.actors = []
        if ray.is_initialized():
            ray.shutdown()

