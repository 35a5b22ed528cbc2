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


class NoHealthyEndpoint(LLMError):
    """Every endpoint failed for longer than the retry budget allows."""


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
    sem: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.sem = asyncio.Semaphore(self.max_concurrency)

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def load(self) -> float:
        # queued callers count: otherwise, once every endpoint is full, all later calls would queue
        # on whichever endpoint sorts first while a faster one drains and stays idle
        return (self.in_flight + self.queued) / self.max_concurrency


class EndpointPool(Generic[C]):
    """Routes each call to the least-loaded healthy endpoint and fails over on errors.

    ``prefer_host`` makes a caller use endpoints on its own host first, as long as they have room.
    """

    def __init__(self, endpoints: list[Endpoint[C]], max_retries: int = 6, backoff_base_s: float = 0.2,
                 backoff_max_s: float = 5.0, rng: random.Random | None = None, prefer_host: str | None = None):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random(0)  # jitter only: never affects simulated outcomes
        self.prefer_host = prefer_host
        self.failovers = 0

    def pick(self) -> Endpoint[C] | None:
        now = time.monotonic()
        best, best_key = None, None
        for ep in self.endpoints:
            if not ep.healthy(now):
                continue
            # an endpoint on our own host wins while it has room; then the least loaded anywhere
            local = self.prefer_host is not None and ep.host == self.prefer_host and ep.load() < 1.0
            key = (0 if local else 1, ep.load(), ep.calls)
            if best_key is None or key < best_key:
                best, best_key = ep, key
        return best

    async def call(self, op: Callable[[C], Awaitable[R]]) -> tuple[R, Endpoint[C], int]:
        """Run ``op(client)`` on a chosen endpoint; retry elsewhere on retriable errors."""
        attempt = 0
        last: Exception | None = None
        while True:
            ep = self.pick()
            if ep is None:
                wait = min(e.down_until for e in self.endpoints) - time.monotonic()
                if attempt > self.max_retries:
                    raise NoHealthyEndpoint(f"no healthy endpoint after {attempt} attempts: {last}")
                attempt += 1
                await asyncio.sleep(max(0.01, min(wait, self.backoff_max_s)))
                # give the endpoint whose cooldown ends first another chance (a probe)
                min(self.endpoints, key=lambda e: e.down_until).down_until = 0.0
                continue
            ep.queued += 1
            try:
                await ep.sem.acquire()
            finally:
                ep.queued -= 1
            try:
                ep.in_flight += 1
                ep.calls += 1
                try:
                    result = await op(ep.client)
                    ep.failures = 0
                    return result, ep, attempt + 1
                except RetriableError as e:
                    last = e
                    ep.failures += 1
                    if e.endpoint_down:
                        cool = min(self.backoff_max_s * 4, self.backoff_base_s * (2 ** min(ep.failures, 8)))
                        ep.down_until = time.monotonic() + cool
                        self.failovers += 1
                        logger.warning("endpoint {} failing ({}); routing elsewhere for {:.1f}s", ep.name, e, cool)
                finally:
                    ep.in_flight -= 1
            finally:
                ep.sem.release()
            attempt += 1
            if attempt > self.max_retries:
                raise LLMError(f"giving up after {attempt} attempts: {last}")
            delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
            await asyncio.sleep(delay * (0.5 + self._rng.random()) if len(self.endpoints) == 1 else delay * self._rng.random())

    def stats(self) -> list[dict[str, Any]]:
        return [{"endpoint": e.name, "calls": e.calls, "failures": e.failures} for e in self.endpoints]


class ChatPool:
    """A :class:`ChatClient` over an :class:`EndpointPool` of chat clients."""

    def __init__(self, pool: EndpointPool):
        self.pool = pool

    async def complete(self, request: ChatRequest) -> ChatResult:
        result, _ep, attempts = await self.pool.call(lambda c: c.complete(request))
        result.attempts = attempts
        return result

    async def aclose(self) -> None:
        for ep in self.pool.endpoints:
            await ep.client.aclose()
