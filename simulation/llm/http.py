"""Plain OpenAI-compatible chat client for one endpoint, with vLLM extras when present."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from loguru import logger

from .types import ChatRequest, ChatResult, LLMError, RetriableError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def choice_schema(choices: list[str]) -> dict[str, Any]:
    """A choice as a standard JSON schema: one string of an enum (the answer comes back quoted)."""
    return {"type": "string", "enum": list(choices)}


class OpenAIChatClient:
    """POSTs ``/chat/completions`` to one endpoint.

    How a choice or a JSON answer is asked for (``mode``), detected once per endpoint:

    - ``vllm``: vLLM's ``structured_outputs`` for choices, ``response_format`` for JSON (the server
      answers ``GET /version``);
    - ``schema``: the portable OpenAI ``response_format`` JSON schema for both, a choice being a
      string ``enum`` (llama.cpp, SGLang, TGI, Ollama, OpenAI);
    - ``prose``: the structure is only asked for in the prompt, where a server rejects schemas
      (HTTP 400/422) or ignores them (its first structured answer is not JSON); the
      :class:`~simulation.llm.structured.StructuredClient` then validates and repairs.
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
        # vllm_extras: True -> vLLM's fields; False -> the portable schema; None -> ask /version
        self.mode: str | None = None if vllm_extras is None else ("vllm" if vllm_extras else "schema")
        self._schema_seen = False  # a schema answer came back as JSON: the server honours schemas
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
        """VLLM answers ``GET /version``; other OpenAI-compatible servers do not (they get ``schema``)."""
        if self.vllm_extras is None:
            root = self.base_url.removesuffix("/v1")
            try:
                async with self._sess().get(root + "/version", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    self.vllm_extras = r.status == 200 and "version" in (await r.json(content_type=None))
            except (TimeoutError, aiohttp.ClientError, ValueError):
                self.vllm_extras = False
            if self.mode is None:
                self.mode = "vllm" if self.vllm_extras else "schema"
        return bool(self.vllm_extras)

    def _fall_back(self, why: str) -> None:
        if self.mode == "schema":
            self.mode = "prose"
            logger.warning("{}: {}; choices and JSON are asked for in the prompt and repaired from now on",
                           self.base_url, why)

    def payload(self, req: ChatRequest) -> dict[str, Any]:
        """The JSON body of the request, in this endpoint's structured-output mode."""
        model = self.aliases.get(req.model, req.model) if req.model else self.model
        body: dict[str, Any] = {**self.generate_args, "model": model, "messages": req.messages,
                                "max_tokens": req.max_tokens, "temperature": req.temperature}
        if req.seed is not None:
            body["seed"] = req.seed
        if self.mode == "vllm" and req.choices:
            body["structured_outputs"] = {"choice": req.choices}
        elif self.mode in ("vllm", "schema") and (req.choices or req.json_schema is not None):
            schema = choice_schema(req.choices) if req.choices else req.json_schema
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return body

    async def complete(self, req: ChatRequest) -> ChatResult:
        """POST the request; transient failures raise :class:`RetriableError`."""
        if self.mode is None:
            await self.detect_extras()
        t0 = time.perf_counter()
        body = self.payload(req)
        asked_schema = self.mode == "schema" and "response_format" in body
        try:
            async with self._sess().post(self._url, data=json.dumps(body), headers=self._headers,
                                         timeout=self.timeout) as resp:
                if resp.status in RETRY_STATUS:
                    raise RetriableError(f"{self.base_url}: HTTP {resp.status}", endpoint_down=resp.status >= 502)
                if resp.status in (400, 422) and asked_schema:
                    self._fall_back(f"rejects response_format (HTTP {resp.status})")
                    return await self.complete(req)
                if resp.status != 200:
                    text = (await resp.text())[:300]
                    raise LLMError(f"{self.base_url}: HTTP {resp.status}: {text}")
                raw = await resp.text()
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise RetriableError(f"{self.base_url}: {type(e).__name__}: {e}", endpoint_down=True) from e
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except ValueError as e:  # an HTML error page from a proxy, say
            raise RetriableError(f"{self.base_url}: reply is not JSON (starts {raw[:60]!r})") from e
        except (KeyError, IndexError, TypeError) as e:
            raise RetriableError(f"{self.base_url}: malformed response (no choices[0].message)") from e
        if asked_schema and not self._schema_seen and choice.get("finish_reason") != "length":
            try:
                value = json.loads(text)
                honoured = value in req.choices if req.choices else True
            except ValueError:
                honoured = False
            if honoured:
                self._schema_seen = True
            else:
                self._fall_back("ignores response_format (its answer was not the schema's JSON)")
        usage = data.get("usage") or {}
        return ChatResult(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), endpoint=self.base_url,
                          latency_ms=(time.perf_counter() - t0) * 1000, finish_reason=choice.get("finish_reason"),
                          model=body["model"])

    async def aclose(self) -> None:
        """Close the HTTP session this client opened."""
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
