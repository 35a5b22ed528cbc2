"""Batched embedding requests over a pool of OpenAI-compatible ``/embeddings`` endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import numpy as np

from ..config.models import EmbeddingSettings
from ..llm.cache import ReplayMiss
from ..llm.pool import Endpoint, EndpointPool
from ..llm.types import LLMError, RetriableError

DIM_DTYPE = np.float32


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class OpenAIEmbeddingClient:
    """One ``/embeddings`` endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", timeout_s: float = 60.0,
                 truncate_tokens: int | None = 256):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.truncate_tokens = truncate_tokens
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        body: dict = {"model": self.model, "input": texts}
        if self.truncate_tokens:
            body["truncate_prompt_tokens"] = self.truncate_tokens
        try:
            async with self._session.post(self.base_url + "/embeddings", data=json.dumps(body),
                                          headers=self._headers, timeout=self.timeout) as r:
                if r.status >= 500 or r.status == 429:
                    raise RetriableError(f"{self.base_url}: HTTP {r.status}", endpoint_down=r.status >= 502)
                if r.status != 200:
                    raise LLMError(f"{self.base_url}: HTTP {r.status}: {(await r.text())[:200]}")
                data = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise RetriableError(f"{self.base_url}: {type(e).__name__}", endpoint_down=True) from e
        rows = sorted(data["data"], key=lambda d: d["index"])
        return np.asarray([d["embedding"] for d in rows], dtype=DIM_DTYPE)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class EmbeddingCache:
    """``text key -> unit vector``; new entries are kept aside so the run store can persist them."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.new: list[tuple[str, bytes]] = []

    def put(self, key: str, vec: np.ndarray, record: bool = True) -> None:
        self.vectors[key] = vec
        if record:
            self.new.append((key, vec.astype(np.float32).tobytes()))

    def drain_new(self) -> list[tuple[str, bytes]]:
        out, self.new = self.new, []
        return out


class EmbeddingPool:
    """``await pool.embed(texts)`` -> unit vectors; requests from many agents are batched together."""

    def __init__(self, endpoints: list[Endpoint] | None, settings: EmbeddingSettings,
                 cache: EmbeddingCache | None = None, replay_only: bool = False, prefer_host: str | None = None):
        self.settings = settings
        self.cache = cache or EmbeddingCache()
        self.replay_only = replay_only
        self.pool = (EndpointPool(endpoints, max_retries=settings.max_retries, prefer_host=prefer_host,
                                   outage_limit_s=settings.outage_limit_s, kind="embedding")
                     if endpoints else None)
        if self.pool is None and not replay_only:
            raise ValueError("an embedding pool needs endpoints unless it replays")
        self._pending: dict[str, list[asyncio.Future]] = {}
        self._order: list[tuple[str, str]] = []
        self._flusher: asyncio.Task | None = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        futs: list[asyncio.Future | None] = []
        loop = asyncio.get_running_loop()
        for k, t in zip(keys, texts, strict=True):
            if k in self.cache.vectors:
                futs.append(None)
                continue
            if self.replay_only:
                raise ReplayMiss(f"replay has no recorded embedding for text {t[:40]!r}")
            f = loop.create_future()
            if k not in self._pending:
                self._pending[k] = []
                self._order.append((k, t))
            self._pending[k].append(f)
            futs.append(f)
        if any(f is not None for f in futs):
            if len(self._order) >= self.settings.batch_size:
                self._flush_now()
            elif self._flusher is None or self._flusher.done():
                self._flusher = asyncio.ensure_future(self._flush_later())
            await asyncio.gather(*[f for f in futs if f is not None])
        return np.stack([self.cache.vectors[k] for k in keys]) if keys else np.zeros((0, 0), DIM_DTYPE)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.settings.batch_wait_ms / 1000)
        self._flush_now()

    def _flush_now(self) -> None:
        while self._order:
            batch, self._order = self._order[: self.settings.batch_size], self._order[self.settings.batch_size:]
            asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list[tuple[str, str]]) -> None:
        texts = [t for _, t in batch]
        try:
            assert self.pool is not None
            vecs, _ep, _n = await self.pool.call(lambda c: c.embed(texts))
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.maximum(norms, 1e-12)
            for (k, _), v in zip(batch, vecs, strict=True):
                self.cache.put(k, v.astype(DIM_DTYPE))
                for f in self._pending.pop(k, []):
                    if not f.done():
                        f.set_result(None)
        except Exception as e:  # every waiter gets the error, none hangs
            for k, _ in batch:
                for f in self._pending.pop(k, []):
                    if not f.done():
                        f.set_exception(e)

    async def aclose(self) -> None:
        if self.pool is not None:
            for ep in self.pool.endpoints:
                await ep.client.aclose()
