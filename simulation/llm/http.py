"""Plain OpenAI-compatible chat client for one endpoint, with vLLM extras when present."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from .types import ChatRequest, ChatResult, LLMError, RetriableError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIChatClient:
    """POSTs ``/chat/completions`` to one endpoint.

    With ``vllm_extras`` the request carries vLLM's ``structured_outputs`` (choices) or a
    ``json_schema`` response format; without them the structure is only asked for in the prompt
    and the :class:`~simulation.llm.structured.StructuredClient` validates and repairs.
    """

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", timeout_s: float = 120.0,
                 vllm_extras: bool | None = None, generate_args: dict[str, Any] | None = None,
                 session: aiohttp.ClientSession | None = None, max_connections: int = 64,
                 aliases: dict[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.aliases = dict(aliases or {})  # route name (e.g. the config_name) -> the name the server serves
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.vllm_extras = vllm_extras
        self.generate_args = dict(generate_args or {})
        self._session = session
        self._own_session = session is None
        self._max_connections = max_connections
        self._url = self.base_url + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, force_close=False),
                json_serialize=json.dumps,
            )
        return self._session

    async def detect_extras(self) -> bool:
        """vLLM answers ``GET /version``; other OpenAI-compatible servers do not."""
        if self.vllm_extras is None:
            root = self.base_url.removesuffix("/v1")
            try:
                async with self._sess().get(root + "/version", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    self.vllm_extras = r.status == 200 and "version" in (await r.json(content_type=None))
            except (TimeoutError, aiohttp.ClientError, ValueError):
                self.vllm_extras = False
        return bool(self.vllm_extras)

    def payload(self, req: ChatRequest) -> dict[str, Any]:
        model = self.aliases.get(req.model, req.model) if req.model else self.model
        body: dict[str, Any] = {**self.generate_args, "model": model, "messages": req.messages,
                                "max_tokens": req.max_tokens, "temperature": req.temperature}
        if req.seed is not None:
            body["seed"] = req.seed
        if self.vllm_extras:
            if req.choices:
                body["structured_outputs"] = {"choice": req.choices}
            elif req.json_schema is not None:
                body["response_format"] = {"type": "json_schema",
                                           "json_schema": {"name": "answer", "schema": req.json_schema}}
        return body

    async def complete(self, req: ChatRequest) -> ChatResult:
        if self.vllm_extras is None:
            await self.detect_extras()
        t0 = time.perf_counter()
        body = self.payload(req)
        try:
            async with self._sess().post(self._url, data=json.dumps(body), headers=self._headers,
                                         timeout=self.timeout) as resp:
                if resp.status in RETRY_STATUS:
                    raise RetriableError(f"{self.base_url}: HTTP {resp.status}", endpoint_down=resp.status >= 502)
                if resp.status != 200:
                    text = (await resp.text())[:300]
                    raise LLMError(f"{self.base_url}: HTTP {resp.status}: {text}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise RetriableError(f"{self.base_url}: {type(e).__name__}: {e}", endpoint_down=True) from e
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as e:
            raise RetriableError(f"{self.base_url}: malformed response") from e
        usage = data.get("usage") or {}
        return ChatResult(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), endpoint=self.base_url,
                          latency_ms=(time.perf_counter() - t0) * 1000, finish_reason=choice.get("finish_reason"),
                          model=body["model"])

    async def aclose(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
