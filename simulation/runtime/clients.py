"""Wire the LLM and embedding clients of one process (the driver, or an agent group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..config.models import ModelConfig, RunConfig
from ..embedding import EmbeddingCache, EmbeddingPool, OpenAIEmbeddingClient
from ..llm import (
    CachingClient,
    Endpoint,
    EndpointPool,
    OpenAIChatClient,
    RecordingClient,
    ResponseCache,
    StructuredClient,
)
from ..llm.averaging import OrderAveragingClient, ScorerPool
from ..llm.fake import FakeChatClient, FakeEmbeddingClient
from ..llm.pool import ChatPool
from ..llm.recording import CallSink
from ..llm.scoring import FakeOptionScorer, VLLMOptionScorer
from ..llm.types import ChatClient, ChatRequest, ChatResult, LLMError

_EXTRAS = {"on": True, "off": False, "auto": None}
NO_ENDPOINT = "no {} endpoint: model_configs.json has none and simulation.embedded.enabled is false"


class NoEndpointClient:
    """Stands in where no endpoint is configured: a scenario that never calls the model runs fine."""

    def __init__(self, kind: str):
        self.kind = kind
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        raise LLMError(NO_ENDPOINT.format(self.kind))

    async def embed(self, texts: list[str]) -> np.ndarray:
        raise LLMError(NO_ENDPOINT.format(self.kind))

    async def aclose(self) -> None:
        return None


def build_chat_client(cfg: RunConfig, models: list[ModelConfig], sink: CallSink, replay: ResponseCache | None = None,
                      warm: ResponseCache | None = None, prefer_host: str | None = None) -> ChatClient:
    """Recording(Structured(Pool)); a replay is Recording(Caching(replay only)).

    ``warm`` answers the calls it holds without asking a server and without recording them again
    (a group re-running part of a round: those calls are in the run store already), so it goes
    outside the recorder: Caching(warm, Recording(Structured(Pool))).
    """
    s = cfg.simulation.llm
    if replay is not None:
        return RecordingClient(CachingClient(None, replay, replay_only=True), sink)
    if s.backend == "fake":
        fake: ChatClient = FakeChatClient()
        if s.order_averaged:
            fake = OrderAveragingClient(fake, FakeOptionScorer())
        recorded = RecordingClient(StructuredClient(fake, s.max_repairs), sink)
        return recorded if warm is None else CachingClient(recorded, warm, remember=False)
    if not models:
        return RecordingClient(NoEndpointClient("chat"), sink)
    chat: ChatClient = ChatPool(_pool(cfg, models, prefer_host, "chat", lambda m: OpenAIChatClient(
        m.base_url, m.model_name, m.api_key, s.timeout_s, _EXTRAS[m.vllm_extras], m.generate_args,
        max_connections=m.max_concurrency, aliases={m.config_name: m.model_name})))
    if s.order_averaged:
        # option scorers on the same endpoints, pooled as the chat clients are
        chat = OrderAveragingClient(chat, ScorerPool(_pool(cfg, models, prefer_host, "option scorer", lambda m: (
            VLLMOptionScorer(m.base_url, m.model_name, m.api_key, s.timeout_s, aliases={m.config_name: m.model_name})))))
    recorded = RecordingClient(StructuredClient(chat, s.max_repairs), sink)
    if warm is not None:
        return CachingClient(recorded, warm, remember=False)
    return recorded


def _pool(cfg: RunConfig, models: list[ModelConfig], prefer_host: str | None, kind: str,
          client: Callable[[ModelConfig], Any]) -> EndpointPool:
    """An endpoint per chat model entry, each with ``client(entry)``, serving its names and adapters."""
    s = cfg.simulation.llm
    endpoints = [Endpoint(m.config_name, client(m), m.max_concurrency, m.host,
                          models=frozenset({m.config_name, m.model_name, *m.adapters}), default=default)
                 for m, default in zip(models, default_endpoints(cfg, models), strict=True)]
    return EndpointPool(endpoints, s.max_retries, s.backoff_base_s, s.backoff_max_s, prefer_host=prefer_host,
                        outage_limit_s=s.outage_limit_s, kind=kind)


def default_endpoints(cfg: RunConfig, models: list[ModelConfig]) -> list[bool]:
    """Which endpoints answer agents that name no model: those serving ``llm.model`` (or the first
    chat model), unless an entry says otherwise; all of them when none would."""
    named = cfg.simulation.llm.model or next((m.model_name for m in models if m.serves_default is not False), None)
    flags = [m.serves_default if m.serves_default is not None else named in (m.config_name, m.model_name)
             for m in models]
    return flags if any(flags) else [True] * len(models)


def build_embeddings(cfg: RunConfig, models: list[ModelConfig], replay: dict[str, bytes] | None = None,
                     prefer_host: str | None = None) -> EmbeddingPool:
    """A batched embedding pool; a replay serves recorded vectors only."""
    cache = EmbeddingCache()
    if replay is not None:
        pool = EmbeddingPool(None, cfg.simulation.embedding, cache, replay_only=True)
        warm_embeddings(pool, replay)
        return pool
    if cfg.simulation.llm.backend == "fake":
        return EmbeddingPool([Endpoint("fake", FakeEmbeddingClient(), 64)], cfg.simulation.embedding, cache)
    if not models:
        models_missing = Endpoint("none", NoEndpointClient("embedding"), 1)
        return EmbeddingPool([models_missing], cfg.simulation.embedding.model_copy(update={"max_retries": 0}), cache)
    eps = [Endpoint(m.config_name, OpenAIEmbeddingClient(m.base_url, m.model_name, m.api_key,
                                                         cfg.simulation.embedding.timeout_s), m.max_concurrency, m.host)
           for m in models]
    return EmbeddingPool(eps, cfg.simulation.embedding, cache, prefer_host=prefer_host)


def warm_embeddings(pool: EmbeddingPool, vectors: dict[str, bytes]) -> None:
    """Give a pool vectors it need not ask for again (they are already in the run store)."""
    for k, v in vectors.items():
        if k not in pool.cache.vectors:
            pool.cache.put(k, np.frombuffer(v, dtype=np.float32), record=False)
