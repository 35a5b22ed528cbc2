"""Requests, results and the chat-client protocol every wrapper implements."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel


class LLMError(RuntimeError):
    """An LLM call failed for good (after retries and failover)."""


class RetriableError(LLMError):
    """A failure worth retrying, possibly on another endpoint."""

    def __init__(self, msg: str, endpoint_down: bool = False):
        super().__init__(msg)
        self.endpoint_down = endpoint_down


@dataclass(slots=True)
class CallTag:
    """Who made a call and where: used for recording and as part of the replay key."""

    agent_id: str = ""
    round: int = 0
    phase: str = ""
    action: str = ""
    seq: int = 0


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request. ``choices`` or ``json_schema`` ask for structured output."""

    messages: list[dict[str, str]]
    max_tokens: int = 48
    temperature: float = 0.0
    choices: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    seed: int | None = None
    tag: CallTag = field(default_factory=CallTag)
    model: str | None = None  # a route name (see llm.routing); None: the run's default chat model
    validator: type[BaseModel] | None = None  # a JSON answer must validate against it (not part of the key)
    # a choice answered from option probabilities averaged over orders, drawn with this seed (llm.averaging)
    order_averaged: int | None = None

    def key(self) -> str:
        """Stable key of the request, its caller and the model asked, for the response cache."""
        t = self.tag
        parts: list = [self.messages, self.max_tokens, self.temperature, self.choices, self.json_schema, self.seed,
                       t.agent_id, t.round, t.phase, t.action, t.seq]
        if self.model is not None:  # keys of default-model calls stay as older runs recorded them
            parts.append(self.model)
        if self.order_averaged is not None:
            parts.append(["order_averaged", self.order_averaged])
        body = json.dumps(parts, separators=(",", ":"), sort_keys=True)
        return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class ChatResult:
    """The completion text and its accounting."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    endpoint: str = ""
    latency_ms: float = 0.0
    attempts: int = 1
    cached: bool = False
    valid: bool = True
    repairs: int = 0
    raw_text: str | None = None
    finish_reason: str | None = None
    model: str | None = None  # the model or adapter that answered, as the server names it


class ChatClient(Protocol):
    """Anything that completes a chat request: a server, a pool, or a wrapper around one."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Complete one request (its validation model, if any, travels on the request)."""

    async def aclose(self) -> None:
        """Release connections."""
