"""Option probabilities: how likely a model is to pick each option of a choice call.

A choice is answered under a grammar that allows only the options, token by token. The
probability of an option is what that constrained decoder gives it at temperature 1: the product,
over the points where the options' tokens part ways, of the model's probability of the option's
next token renormalised over the tokens the options allow there (the end of the answer counting as
a token where one option is a prefix of another: "1" against "10"). Positions where all remaining
options agree cost nothing, so a long option is not penalised for its length.

:class:`VLLMOptionScorer` reads the token log-probabilities from a vLLM server (``/tokenize``, and
``/v1/completions`` with ``logprobs`` at each point where the options part: one request for two
options that differ from their first token, the prompt served from the prefix cache; vLLM computes
``prompt_logprobs`` without the cache, so those are kept for the rare token outside the top list);
:class:`FakeOptionScorer` is the in-process stand-in of ``llm.backend=fake``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Protocol

import aiohttp

from .types import LLMError, RetriableError


class OptionScorer(Protocol):
    """Anything that gives each option of a choice call its probability."""

    async def option_probs(self, messages: list[dict[str, str]], options: list[str],
                           model: str | None = None) -> dict[str, float]:
        """Each option's probability (they sum to 1), the options listed to the model in this order."""

    async def aclose(self) -> None:
        """Release connections."""


def constrained_probs(paths: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """Each option's probability under a decoder allowed only the options.

    ``paths`` holds each option's tokens with their log-probabilities (the end token included where
    it tells options apart). At each prefix shared by several options, the next tokens they allow
    are renormalised.
    """
    out = {}
    for option, path in paths.items():
        logp = 0.0
        for k, (_, lp) in enumerate(path):
            prefix = tuple(t for t, _ in path[:k])
            # the distinct next tokens of every option sharing this prefix, with their log-probabilities
            nxt: dict[int, float] = {}
            for other in paths.values():
                if len(other) > k and tuple(t for t, _ in other[:k]) == prefix:
                    nxt.setdefault(other[k][0], other[k][1])
            if len(nxt) > 1:
                top = max(nxt.values())
                logp += lp - (top + math.log(sum(math.exp(v - top) for v in nxt.values())))
        out[option] = logp
    top = max(out.values())
    total = sum(math.exp(v - top) for v in out.values())
    return {o: math.exp(v - top) / total for o, v in out.items()}


def option_paths(ids: dict[str, list[int]], end: list[int]) -> dict[str, list[int]]:
    """Each option's token path as the constrained decoder walks it.

    An option's tokens, then the end token where the option begins a longer one ("1" against "10"),
    since only the end tells them apart.
    """
    return {o: t + (end if any(p != o and u[:len(t)] == t for p, u in ids.items()) else [])
            for o, t in ids.items()}


def branch_points(paths: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """Each prefix at which the options' token paths part, with the distinct next tokens allowed there."""
    nxt: dict[tuple[int, ...], set[int]] = {}
    for path in paths:
        for k, t in enumerate(path):
            nxt.setdefault(tuple(path[:k]), set()).add(t)
    return {p: sorted(ts) for p, ts in nxt.items() if len(ts) > 1}


TOP = 20  # log-probabilities per scored position (vLLM's default --max-logprobs)


class VLLMOptionScorer:
    """Option probabilities from a vLLM server's prompt log-probabilities."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", timeout_s: float = 120.0,
                 aliases: dict[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")
        self.model = model
        self.aliases = dict(aliases or {})
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, list[int]] = {}

    async def _post(self, url: str, body: dict[str, Any], tries: int = 6) -> dict[str, Any]:
        """POST with retries of transient failures (a dropped connection under load); the last one raises."""
        import asyncio

        for attempt in range(tries):
            try:
                return await self._post_once(url, body)
            except RetriableError:
                if attempt == tries - 1:
                    raise
                await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
        raise AssertionError("unreachable")

    async def _post_once(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, data=json.dumps(body), headers=self._headers,
                                          timeout=self._timeout) as r:
                if r.status >= 500 or r.status == 429:
                    raise RetriableError(f"{url}: HTTP {r.status}", endpoint_down=r.status >= 502)
                if r.status != 200:
                    raise LLMError(f"{url}: HTTP {r.status}: {(await r.text())[:300]} (option probabilities need "
                                   "a vLLM server: /tokenize and prompt_logprobs)")
                return await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise RetriableError(f"{url}: {type(e).__name__}: {e}", endpoint_down=True) from e

    async def _tokenize(self, text: str, model: str) -> list[int]:
        if text not in self._tokens:
            got = await self._post(self.root + "/tokenize", {"model": model, "prompt": text, "add_special_tokens": False})
            self._tokens[text] = list(got["tokens"])
        return self._tokens[text]

    async def _end_of_answer(self, messages: list[dict[str, str]], prompt: list[int], name: str) -> list[int]:
        """The token the chat template closes an answer with (SmolLM2's ``<|im_end|>``).

        It is the first token after the prompt in the conversation with an empty answer.
        """
        if "\0end" not in self._tokens:
            full = (await self._post(self.root + "/tokenize", {
                "model": name, "messages": [*messages, {"role": "assistant", "content": ""}],
                "add_generation_prompt": False}))["tokens"]
            self._tokens["\0end"] = list(full[len(prompt):len(prompt) + 1]) if full[:len(prompt)] == prompt else []
        return self._tokens["\0end"]

    async def option_probs(self, messages: list[dict[str, str]], options: list[str],
                           model: str | None = None) -> dict[str, float]:
        """Each option's probability, from one request per point where the options part.

        Each request is the prompt and the tokens before that point, generating one token with the
        top ``TOP`` log-probabilities, so the prompt comes from the prefix cache; a token the options
        allow but the top list lacks is scored exactly by a prompt log-probability request.
        """
        import asyncio

        name = self.aliases.get(model, model) if model else self.model
        prompt = (await self._post(self.root + "/tokenize", {"model": name, "messages": messages,
                                                             "add_generation_prompt": True}))["tokens"]
        ids = {o: await self._tokenize(o, name) for o in options}
        end = await self._end_of_answer(messages, prompt, name)
        paths = option_paths(ids, end)
        branches = branch_points(list(paths.values()))

        async def node(prefix: tuple[int, ...], allowed: list[int]) -> dict[int, float]:
            got = await self._post(self.base_url + "/completions", {
                "model": name, "prompt": prompt + list(prefix), "max_tokens": 1, "temperature": 0.0,
                "logprobs": TOP, "return_tokens_as_token_ids": True})
            top = got["choices"][0]["logprobs"]["top_logprobs"][0]
            out = {int(k.removeprefix("token_id:")): float(v) for k, v in top.items()}
            for tok in set(allowed) - set(out):  # rarer than the top list: its exact log-probability
                exact = await self._post(self.base_url + "/completions", {
                    "model": name, "prompt": prompt + [*prefix, tok], "max_tokens": 1, "temperature": 0.0,
                    "prompt_logprobs": 0})
                out[tok] = float(exact["choices"][0]["prompt_logprobs"][-1][str(tok)]["logprob"])
            return out

        keys = list(branches)
        found = dict(zip(keys, await asyncio.gather(*(node(pre, branches[pre]) for pre in keys)), strict=True))
        scored = {o: [(t, found[tuple(path[:k])][t] if tuple(path[:k]) in found else 0.0)
                      for k, t in enumerate(path)] for o, path in paths.items()}
        return constrained_probs(scored)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


class FakeOptionScorer:
    """Deterministic stand-in for tests and ``llm.backend=fake``.

    A preference for the first-listed option (position) times one for each option's content, seeded
    by the prompt, so averaging over orders recovers the content part.
    """

    def __init__(self, position_weight: float = 1.0):
        self.position_weight = position_weight

    @staticmethod
    def content_logit(messages: list[dict[str, str]], option: str) -> float:
        """The content part of an option's logit: fixed by the first message and the option."""
        key = json.dumps([messages[0]["content"] if messages else "", option])
        return int(hashlib.blake2b(key.encode(), digest_size=2).hexdigest(), 16) / 65535 * 3

    async def option_probs(self, messages: list[dict[str, str]], options: list[str],
                           model: str | None = None) -> dict[str, float]:
        """Softmax of the content logit minus ``position_weight`` per place down the list."""
        logits = {o: self.content_logit(messages, o) - self.position_weight * i for i, o in enumerate(options)}
        top = max(logits.values())
        total = sum(math.exp(v - top) for v in logits.values())
        return {o: math.exp(v - top) / total for o, v in logits.items()}

    async def aclose(self) -> None:
        """Nothing to release."""
        return None
