"""Response cache keyed by the request and its caller: replaying a recorded run makes no LLM call."""

from __future__ import annotations

from dataclasses import dataclass

from .structured import StructuredOutputError
from .types import ChatClient, ChatRequest, ChatResult, LLMError


class ReplayMiss(LLMError):
    """Replay asked for a response the recorded run does not have."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A recorded answer.

    With ``error`` set, the call gave no valid structured answer and ``text`` is the model's last
    raw answer, so a replay fails the same way and records the same row.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    repairs: int = 0
    finish_reason: str | None = None
    model: str | None = None

    def result(self) -> ChatResult:
        """The recorded answer as a result (marked cached)."""
        return ChatResult(text=self.text, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                          endpoint="cache", cached=True, valid=self.error is None, repairs=self.repairs,
                          finish_reason=self.finish_reason, model=self.model)


class ResponseCache:
    """Recorded answers by request key, filled from a run store or as calls happen."""

    def __init__(self, entries: dict[str, CachedAnswer] | None = None):
        self.entries: dict[str, CachedAnswer] = dict(entries or {})

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> CachedAnswer | None:
        """The recorded answer for a request key, or None."""
        return self.entries.get(key)

    def put(self, key: str, result: ChatResult, error: str | None = None) -> None:
        """Record an answer (or, with ``error``, a call that gave no valid answer)."""
        self.entries[key] = CachedAnswer(result.text, result.prompt_tokens, result.completion_tokens, error,
                                         result.repairs, result.finish_reason, result.model)


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

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The cached answer when there is one, else the inner client's (remembered)."""
        key = request.key()
        hit = self.cache.get(key)
        if hit is not None:
            if hit.error is not None:
                raise StructuredOutputError(hit.error, hit.result())
            return hit.result()
        if self.replay_only:
            t = request.tag
            raise ReplayMiss(f"replay has no recorded response for {t.agent_id} round {t.round} {t.action} #{t.seq}")
        try:
            result = await self.inner.complete(request)
        except StructuredOutputError as e:
            if self.remember:
                self.cache.put(key, e.result or ChatResult(text=""), error=str(e))
            raise
        if self.remember:
            self.cache.put(key, result)
        return result

    async def aclose(self) -> None:
        """Close the inner client."""
        if self.inner is not None:
            await self.inner.aclose()
