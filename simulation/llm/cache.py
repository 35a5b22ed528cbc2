"""Response cache keyed by the request and its caller: replaying a recorded run makes no LLM call."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _lines(messages: Any) -> list[str]:
    """A chat request's messages as text lines (``role: first line``, then the content's other lines)."""
    out: list[str] = []
    for m in messages or ():
        text = str(m.get("content", "")) if isinstance(m, dict) else str(m)
        first, *rest = text.split("\n")
        out += [f"{m.get('role', '?') if isinstance(m, dict) else '?'}: {first}", *rest]
    return out


def _clip(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def explain_miss(source: Path, request: ChatRequest) -> str:
    """What differs between a request a replay cannot answer and the nearest recorded one.

    The nearest is the same caller's call of the same round, action and number when recorded,
    else its nearest call of that action; the first differing line of the two prompts is named.
    """
    t = request.tag
    db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        rows = list(db.execute(
            "SELECT round, seq, prompt, key FROM llm_calls WHERE agent_id = ? AND action = ? "
            "ORDER BY (round = ? AND seq = ?) DESC, ABS(round - ?), ABS(seq - ?) LIMIT 1",
            (t.agent_id, t.action, t.round, t.seq, t.round, t.seq)))
    finally:
        db.close()
    if not rows:
        return f"the recording has no {t.action} call of {t.agent_id} at all"
    r, seq, prompt, key = rows[0]
    where = f"round {r} #{seq}" if (r, seq) != (t.round, t.seq) else "the same call"
    try:
        old = _lines(json.loads(prompt))
    except (TypeError, ValueError):
        old = str(prompt).split("\n")
    new = _lines(request.messages)
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return f"nearest recorded call ({where}) differs at prompt line {i + 1}: recorded {_clip(a)!r}, now {_clip(b)!r}"
    if len(old) != len(new):
        return (f"nearest recorded call ({where}) has {len(old)} prompt lines, now {len(new)}: "
                f"the first {min(len(old), len(new))} are the same")
    return (f"nearest recorded call ({where}, key {key}) has the same prompt; the request differs in its "
            f"settings (max_tokens {request.max_tokens}, temperature {request.temperature}, choices, schema or model)")


class ResponseCache:
    """Recorded answers by request key, filled from a run store or as calls happen.

    ``source`` is the run store they came from: a replay that misses names the nearest recorded call.
    """

    def __init__(self, entries: dict[str, CachedAnswer] | None = None, source: Path | None = None):
        self.entries: dict[str, CachedAnswer] = dict(entries or {})
        self.source = source

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
            why = ""
            if self.cache.source is not None:
                try:
                    why = "; " + explain_miss(self.cache.source, request)
                except sqlite3.Error as e:  # the explanation is a courtesy: the miss is reported anyway
                    why = f"; (could not read {self.cache.source}: {e})"
            raise ReplayMiss(f"the replay left its recording: no recorded response for {t.agent_id} round {t.round} "
                             f"{t.action} #{t.seq} (key {key}){why}")
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
