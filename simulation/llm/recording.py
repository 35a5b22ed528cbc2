"""Records every LLM call (who, when, prompt, completion, tokens, latency) for the correction loop."""

from __future__ import annotations

import json
import time
from typing import Protocol

from .types import ChatClient, ChatRequest, ChatResult


class CallSink(Protocol):
    """Where recorded LLM call rows go (the run store, or a group's buffer)."""

    def add_llm_call(self, row: tuple) -> None:
        """Take one ``llm_calls`` row."""


class NoSink:
    """For calls that belong to no run (a judge's): the recorder counts them, nothing stores them."""

    def add_llm_call(self, row: tuple) -> None:
        """Drop the row."""
        return None


class RecordingClient:
    """Appends one row per call to a sink (the run store buffers and writes them in batches)."""

    def __init__(self, inner: ChatClient, sink: CallSink):
        self.inner = inner
        self.sink = sink
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Complete through the inner client and record the call, failed or not."""
        t0 = time.perf_counter()
        error = None
        result: ChatResult | None = None
        try:
            result = await self.inner.complete(request)
            return result
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            result = getattr(e, "result", None)  # a failed structured call still has its raw answer
            raise
        finally:
            self.calls += 1
            t = request.tag
            r = result or ChatResult(text="", valid=False, attempts=0)
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens
            self.sink.add_llm_call((
                t.round, t.phase, t.agent_id, t.action, t.seq, request.key(),
                json.dumps(request.messages, ensure_ascii=False), r.text,
                json.dumps(request.choices) if request.choices else None,
                json.dumps(request.json_schema) if request.json_schema is not None else None,
                r.endpoint, round((time.perf_counter() - t0) * 1000, 3), r.prompt_tokens, r.completion_tokens,
                int(r.cached), int(r.valid and error is None), r.repairs, r.attempts, error, r.finish_reason,
                r.model or request.model,
            ))

    async def aclose(self) -> None:
        """Close the inner client."""
        await self.inner.aclose()
