"""Structured outputs: validate a choice or a JSON answer, with a bounded repair step.

On vLLM the server already constrains the output; elsewhere the answer is matched leniently and,
failing that, the model is asked again at most ``max_repairs`` times.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from .types import ChatClient, ChatRequest, ChatResult, LLMError

_STRIP = " \t\r\n\"'`.,;:!()[]{}*"


class StructuredOutputError(LLMError):
    """The model did not produce a valid structured answer after the repairs allowed.

    ``result`` is the last answer as the model gave it (``valid=False``), with the tokens, attempts
    and repairs of every try, so the failed call is recorded as faithfully as a good one.
    """

    def __init__(self, msg: str, result: ChatResult | None = None):
        super().__init__(msg)
        self.result = result


def match_choice(text: str, choices: list[str]) -> str | None:
    """The choice a free-text answer names, or None: exact, case-insensitive, prefix, then unique mention."""
    t = text.strip().strip(_STRIP)
    if t in choices:
        return t
    low = t.lower()
    by_low = {c.lower(): c for c in choices}
    if low in by_low:
        return by_low[low]
    found = [c for c in choices if re.search(r"(?<!\w)" + re.escape(c.lower()) + r"(?!\w)", low)]
    if len(found) == 1:
        return found[0]
    if found:  # names several options: ambiguous
        return None
    for c in sorted(choices, key=len, reverse=True):
        if low.startswith(c.lower()):
            return c
    return None


def parse_json(text: str) -> Any:
    """The first JSON value in ``text`` (models often wrap JSON in prose or code fences)."""
    t = text.strip()
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    start = min((i for i in (t.find("{"), t.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON found")
    dec = json.JSONDecoder()
    value, _ = dec.raw_decode(t[start:])
    return value


def canonical_json(value: Any) -> str:
    """A JSON value written one way (sorted keys, no spaces): equal answers compare equal."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class StructuredClient:
    """Wraps a client; checks ``choices`` / ``json_schema`` answers and repairs invalid ones."""

    def __init__(self, inner: ChatClient, max_repairs: int = 1):
        self.inner = inner
        self.max_repairs = max_repairs

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Complete, then validate a choice or JSON answer and repair it up to ``max_repairs`` times."""
        if not request.choices and request.json_schema is None:
            return await self.inner.complete(request)
        req = request
        total_p = total_c = attempts = 0
        for repair in range(self.max_repairs + 1):
            res = await self.inner.complete(req)
            total_p += res.prompt_tokens
            total_c += res.completion_tokens
            attempts += res.attempts
            ok, value, why = self._check(res.text, request)
            if ok:
                res.raw_text = res.text if value != res.text else None
                res.text = value
                res.prompt_tokens, res.completion_tokens, res.repairs, res.attempts = total_p, total_c, repair, attempts
                return res
            req = ChatRequest(
                messages=[*request.messages, {"role": "assistant", "content": res.text},
                          {"role": "user", "content": self._repair_prompt(request, why)}],
                max_tokens=request.max_tokens, temperature=request.temperature, choices=request.choices,
                json_schema=request.json_schema, seed=request.seed, tag=request.tag, model=request.model,
                validator=request.validator,
            )
        res.prompt_tokens, res.completion_tokens, res.repairs, res.attempts = total_p, total_c, self.max_repairs, attempts
        res.valid = False
        raise StructuredOutputError(f"no valid answer after {self.max_repairs} repair(s): {why}; last: {res.text[:80]!r}",
                                    res)

    @staticmethod
    def _check(text: str, req: ChatRequest) -> tuple[bool, str, str]:
        if req.choices:
            c = match_choice(text, req.choices)
            return (c is not None, c or "", "answer is not one of the options")
        try:
            value = parse_json(text)
            if req.validator is not None:
                value = req.validator.model_validate(value).model_dump(mode="json")
            return True, canonical_json(value), ""
        except (ValueError, ValidationError) as e:
            return False, "", f"invalid JSON answer: {str(e).splitlines()[0][:120]}"

    @staticmethod
    def _repair_prompt(req: ChatRequest, why: str) -> str:
        if req.choices:
            return f"{why}. Answer with exactly one of: {', '.join(req.choices)}."
        return f"{why}. Answer with only a JSON value matching this schema: {json.dumps(req.json_schema)}"

    async def aclose(self) -> None:
        """Close the inner client."""
        await self.inner.aclose()
