"""A deterministic fake LLM for unit tests (never a stand-in for the integration tests)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from .types import ChatRequest, ChatResult


def schema_instance(schema: dict[str, Any], pick: int = 0) -> Any:
    """A minimal value valid for simple JSON schemas (objects, arrays, enums, scalars)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][pick % len(schema["enum"])]
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties", {})
        return {k: schema_instance(v, pick) for k, v in props.items() if k in schema.get("required", props)}
    if t == "array":
        n = max(schema.get("minItems", 0), min(1, schema.get("maxItems", 1)))
        items = schema.get("items", {})
        return [schema_instance(items, pick + i) for i in range(n)]
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return float(schema.get("minimum", 0))
    if t == "boolean":
        return True
    return "ok"


class FakeChatClient:
    """Answers from the request alone: a choice picked by hash, schema-valid JSON, or short text."""

    def __init__(self, responder: Callable[[ChatRequest], str] | None = None):
        self.responder = responder
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        """An answer computed from the request alone."""
        self.calls += 1
        h = int(hashlib.blake2b(json.dumps(request.messages).encode(), digest_size=4).hexdigest(), 16)
        if self.responder is not None:
            text = self.responder(request)
        elif request.choices:
            text = request.choices[h % len(request.choices)]
        elif request.json_schema is not None:
            text = json.dumps(schema_instance(request.json_schema, h))
        else:
            text = f"reply {h % 1000}"
        return ChatResult(text=text, prompt_tokens=10, completion_tokens=3, endpoint="fake")

    async def aclose(self) -> None:
        """Nothing to close."""
        return None


class FakeEmbeddingClient:
    """Unit vectors (384-d) seeded by each text's hash: the same on every host and process."""

    dim = 384

    async def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text."""
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)

    async def aclose(self) -> None:
        """Nothing to close."""
        return None
