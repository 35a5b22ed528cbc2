"""A pool of endpoints: least-loaded routing, per-endpoint limits, jittered retries, failover.

Generic over the operation, so chat and embedding pools share it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from loguru import logger

from .types import ChatRequest, ChatResult, LLMError, RetriableError

C = TypeVar("C")
R = TypeVar("R")


class EndpointOutage(LLMError):
    """No endpoint answered for longer than the outage limit.

    The run stops rather than record every step of the outage as failed.
    """


@dataclass
class Endpoint(Generic[C]):
    """One server and its live load: calls in flight plus calls queued for one of its slots."""

    name: str
    client: C
    max_concurrency: int = 16
    host: str | None = None
    in_flight: int = 0
    queued: int = 0
    down_until: float = 0.0
    failures: int = 0
    calls: int = 0
    models: frozenset[str] = frozenset()  # route names it serves besides the default
    default: bool = True  # serves the run's default chat model
    sem: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.sem = asyncio.Semaphore(self.max_concurrency)

    def serves(self, model: str | None) -> bool:
        """Whether this endpoint answers requests for ``model`` (None: the default model)."""
        return self.default if model is None else model in self.models

    def healthy(self, now: float) -> bool:
        """Whether the endpoint is not being routed around at time ``now``."""
        return now >= self.down_until

    def load(self) -> float:
        """Calls in flight and queued, per unit of capacity."""
        # queued callers count: otherwise, once every endpoint is full, all later calls would queue
        # on whichever endpoint sorts first while a faster one drains and stays idle
        return (self.in_flight + self.queued) / self.max_concurrency


class EndpointPool(Generic[C]):
    """Routes each call to the least-loaded healthy endpoint and fails over on errors.

    ``prefer_host`` makes a caller use endpoints on its own host first, as long as they have room.
    """

    def __init__(self, endpoints: list[Endpoint[C]], max_retries: int = 6, backoff_base_s: float = 0.2,
                 backoff_max_s: float = 5.0, rng: random.Random | None = None, prefer_host: str | None = None,
                 outage_limit_s: float = 600.0, kind: str = "chat"):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random(0)  # jitter only: never affects simulated outcomes
        self.prefer_host = prefer_host
        self.outage_limit_s = outage_limit_s
        self.kind = kind
        self._outage_since: float | None = None
        self._outage_said = 0.0

    def pick(self, model: str | None = None) -> Endpoint[C] | None:
        """The least-loaded healthy endpoint serving ``model`` (local ones first), or None."""
        now = time.monotonic()
        best, best_key = None, None
        for ep in self.endpoints:
            if not ep.healthy(now) or not ep.serves(model):
                continue
            # an endpoint on our own host wins while it has room; then the least loaded anywhere
            local = self.prefer_host is not None and ep.host == self.prefer_host and ep.load() < 1.0
            key = (0 if local else 1, ep.load(), ep.calls)
            if best_key is None or key < best_key:
                best, best_key = ep, key
        return best

    async def call(self, op: Callable[[C], Awaitable[R]], model: str | None = None) -> tuple[R, Endpoint[C], int]:
        """Run ``op(client)`` on a chosen endpoint; retry elsewhere on retriable errors.

        An error that takes an endpoint down (refused connection, 502-504, timeout) does not use up
        the call's retries: while no endpoint is healthy the call waits, probing, up to
        ``outage_limit_s``, then raises :class:`EndpointOutage`. Other retriable errors (429, 500)
        are retried ``max_retries`` times, then the call fails for good.
        """
        attempt = tries = 0
        last: RetriableError | None = None
        candidates = [ep for ep in self.endpoints if ep.serves(model)]
        if not candidates:
            served = sorted({m for ep in self.endpoints for m in ep.models})
            raise LLMError(f"no {self.kind} endpoint serves model {model!r} (served: {', '.join(served) or 'none'})")
        while True:
            ep = self.pick(model)
            if ep is None:
                await self._wait_out_outage(last, candidates)
                continue
            tries += 1
            ep.queued += 1
            try:
                await ep.sem.acquire()
            finally:
                ep.queued -= 1
            try:
                ep.in_flight += 1
                ep.calls += 1
                started = time.monotonic()
                try:
                    result = await op(ep.client)
                    ep.failures = 0
                    self._outage_since = None  # an answer ends an outage; a probe that fails does not
                    return result, ep, tries
                except RetriableError as e:
                    last = e
                    if e.endpoint_down:
                        self._mark_down(ep, e, started)
                    else:
                        attempt += 1
                finally:
                    ep.in_flight -= 1
            finally:
                ep.sem.release()
            if attempt > self.max_retries:
                raise LLMError(f"giving up after {tries} attempts: {last}")
            if last is not None and not last.endpoint_down:
                delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, attempt - 1)))
                await asyncio.sleep(delay * (0.5 + self._rng.random()))

    def _mark_down(self, ep: Endpoint[C], e: Exception, started: float) -> None:
        """Route around ``ep`` for a while.

        Calls that were in flight when it failed do not lengthen the cooldown (one dropped connection
        under 64 calls is one failure, not 64), and with no other endpoint left it is probed again
        within ``backoff_max_s``.
        """
        now = time.monotonic()
        if ep.down_until > started:  # already marked down by a call that failed at the same time
            return
        ep.failures += 1
        others = sum(1 for o in self.endpoints if o is not ep and o.healthy(now))
        cap = self.backoff_max_s * 4 if others else self.backoff_max_s
        cool = min(cap, self.backoff_base_s * (2 ** min(ep.failures - 1, 8)))
        ep.down_until = now + cool
        logger.warning("{} endpoint {} failing ({}); routing around it for {:.1f}s", self.kind, ep.name, e, cool)

    async def _wait_out_outage(self, last: RetriableError | None, candidates: list[Endpoint[C]]) -> None:
        """No endpoint is healthy: wait for the first to come off its cooldown, and say so."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        down_for = now - self._outage_since
        if down_for > self.outage_limit_s:
            raise EndpointOutage(f"no {self.kind} endpoint answered for {down_for:.0f}s "
                                 f"(outage limit {self.outage_limit_s:.0f}s): {last}")
        if now - self._outage_said >= 10.0:
            self._outage_said = now
            logger.warning("no {} endpoint is answering ({:.0f}s so far); waiting up to {:.0f}s for one",
                           self.kind, down_for, self.outage_limit_s)
        first = min(candidates, key=lambda e: e.down_until)
        await asyncio.sleep(max(0.01, min(first.down_until - now, self.backoff_max_s)))
        # a probe: the endpoint whose cooldown ends first may take the next call
        first.down_until = min(first.down_until, time.monotonic())

    def stats(self) -> list[dict[str, Any]]:
        """Per endpoint: its name, calls and failures."""
        return [{"endpoint": e.name, "calls": e.calls, "failures": e.failures} for e in self.endpoints]


class ChatPool:
    """A :class:`ChatClient` over an :class:`EndpointPool` of chat clients."""

    def __init__(self, pool: EndpointPool):
        self.pool = pool

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Complete on the pool's best endpoint, with retries and failover."""
        result, _ep, attempts = await self.pool.call(lambda c: c.complete(request), request.model)
        result.attempts = attempts
        return result

    async def aclose(self) -> None:
        """Close every endpoint's client."""
        for ep in self.pool.endpoints:
            await ep.client.aclose()
