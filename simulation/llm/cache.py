"""Response cache keyed by the request and its caller: replaying a recorded run makes no LLM call."""

from __future__ import annotations

from pydantic import BaseModel

from .structured import StructuredOutputError
from .types import ChatClient, ChatRequest, ChatResult, LLMError


class ReplayMiss(LLMError):
    """Replay asked for a response the recorded run does not have."""


class ResponseCache:
    """``key -> (text, prompt_tokens, completion_tokens)``, filled from a run store or as calls happen.

    A ``None`` text records that the model gave no valid structured answer, so a replay takes the
    same fallback as the recorded run.
    """

    def __init__(self, entries: dict[str, tuple[str | None, int, int]] | None = None):
        self.entries: dict[str, tuple[str | None, int, int]] = dict(entries or {})

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> tuple[str | None, int, int] | None:
        return self.entries.get(key)

    def put(self, key: str, result: ChatResult) -> None:
        self.entries[key] = (result.text, result.prompt_tokens, result.completion_tokens)


class CachingClient:
    """Serves cached responses; with ``replay_only`` a miss is an error instead of a call.

    ``remember=False`` serves what the cache was filled with but keeps no new answers (a group
    re-running part of a round after a crash reuses its recorded calls, and memory stays flat).
    """

    def __init__(self, inner: ChatClient | None, cache: ResponseCache, replay_only: bool = False,
                 remember: bool = True):
        if inner is None and not replay_only:
            raise ValueError("a caching client without an inner client must be replay_only")
        self.inner = inner
        self.cache = cache
        self.replay_only = replay_only
        self.remember = remember
        self.hits = 0

    async def complete(self, request: ChatRequest, model: type[BaseModel] | None = None) -> ChatResult:
        key = request.key()
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            if hit[0] is None:
                raise StructuredOutputError("recorded run had no valid structured answer here")
            return ChatResult(text=hit[0], prompt_tokens=hit[1], completion_tokens=hit[2], endpoint="cache",
                              cached=True)
        if self.replay_only:
            t = request.tag
            raise ReplayMiss(f"replay has no recorded response for {t.agent_id} round {t.round} {t.action} #{t.seq}")
        try:
            result = await self.inner.complete(request, model) if model else await self.inner.complete(request)
        except StructuredOutputError:
            if self.remember:
                self.cache.entries[key] = (None, 0, 0)
            raise
        if self.remember:
            self.cache.put(key, result)
        return result

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
