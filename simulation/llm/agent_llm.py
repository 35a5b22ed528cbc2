"""The LLM as an agent sees it: bound to the agent, round and phase, so every call is tagged."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from ..config.models import LLMSettings
from .structured import StructuredOutputError
from .types import CallTag, ChatRequest


class Answer(NamedTuple):
    """A structured answer and whether the model gave it: ``value`` is None when it did not."""

    value: Any
    valid: bool


@functools.lru_cache(maxsize=1024)
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema, built once per model class (building it costs far more than a call)."""
    return model.model_json_schema()


OPTIONS_LINE = "\nOptions, in this order: "


def options_line(shown: list[str]) -> str:
    """The line ``llm.shuffle_options`` appends to a choice prompt, stating its options' order."""
    return OPTIONS_LINE + ", ".join(shown) + "."


def reordered(messages: list[dict[str, str]], shown: list[str], order: list[str]) -> list[dict[str, str]] | None:
    """The prompt with its stated option order ``shown`` replaced by ``order``.

    None when the prompt states no order (its options were not shuffled).
    """
    last = messages[-1]["content"]
    if not last.endswith(options_line(shown)):
        return None
    return [*messages[:-1], {**messages[-1], "content": last[: -len(options_line(shown))] + options_line(order)}]


def other_orders(shown: list[str], k: int, key: str) -> list[list[str]]:
    """Orders of ``shown`` other than itself.

    All of them for two or three options, else up to ``k`` distinct ones drawn with
    ``random.Random(key)`` (the same on every rebuild and replay).
    """
    if len(shown) < 2:
        return []
    if len(shown) <= 3:
        return [list(p) for p in itertools.permutations(shown) if list(p) != shown]
    rng = random.Random(key)
    out: list[list[str]] = []
    for _ in range(k * 4):
        o = rng.sample(shown, len(shown))
        if o != shown and o not in out:
            out.append(o)
    return out[:k]


def _digest32(key: str) -> int:
    """A 32-bit number fixed by ``key``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")


def choice_max_tokens(choices: list[str]) -> int:
    """Tokens a choice answer may take: room for the longest option."""
    return max(4, max(len(c) for c in choices) // 2 + 4)


class AgentLLM:
    """``choose`` / ``chat`` / ``json`` for one agent's step; numbers its calls for exact replay."""

    __slots__ = ("client", "settings", "agent_id", "round", "phase", "seq", "calls", "run_seed", "made", "model",
                 "route")

    def __init__(self, client: Any, settings: LLMSettings, agent_id: str, round_: int, phase: str, run_seed: int = 0,
                 model: str | None = None, route: Callable[[str], str | None] | None = None):
        self.model = model  # the route name of the agent's model (None: the run's default)
        self.route = route  # action -> route name, where the routing differs by decision (a scoped adapter)
        self.client = client
        self.settings = settings
        self.agent_id = agent_id
        self.round = round_
        self.phase = phase
        self.seq = 0
        self.calls = 0
        self.run_seed = run_seed
        self.made: list[tuple[int, str]] = []  # (seq, action name) of every call, for linking actions

    def _next_key(self, action: str) -> str:
        """The next call's identity in the run: every per-call draw (seed, option order, averaged pick) hangs on it."""
        return f"{self.run_seed}:{self.agent_id}:{self.round}:{self.phase}:{action}:{self.seq + 1}"

    def _req(self, action: str, messages: list[dict[str, str]], max_tokens: int | None, **kw: Any) -> ChatRequest:
        key = self._next_key(action)
        self.seq += 1
        self.calls += 1
        self.made.append((self.seq, action))
        tag = CallTag(self.agent_id, self.round, self.phase, action, self.seq)
        seed = None
        if self.settings.seed_per_call:  # varied answers at temperature > 0, yet the same on every re-run
            seed = _digest32(key) & 0x7FFFFFFF
        return ChatRequest(messages=messages, max_tokens=max_tokens or self.settings.max_tokens,
                           temperature=self.settings.temperature, seed=seed, tag=tag,
                           model=self.route(action) if self.route is not None else self.model, **kw)

    async def chat(self, action: str, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        """Free text for ``action`` (stripped)."""
        res = await self.client.complete(self._req(action, messages, max_tokens))
        return res.text.strip()

    async def choose(self, action: str, messages: list[dict[str, str]], choices: list[str]) -> Answer:
        """One of ``choices``.

        An answer that stays off-menu after the repairs is ``Answer(None, False)``: the scenario
        decides what "no decision" means; nothing is chosen on the model's behalf.
        """
        if not choices:
            raise ValueError("choose() needs at least one choice")
        max_tokens = choice_max_tokens(choices)
        shown = list(choices)
        if self.settings.shuffle_options and len(shown) > 1:
            # a seeded order per call, stated in the prompt and recorded with the call (llm_calls.choices),
            # so position bias shows apart from option bias; a replay draws the same order
            rng = random.Random(self._next_key(action))
            rng.shuffle(shown)
            messages = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + options_line(shown)}]
        averaged = None
        if action in self.settings.order_averaged and len(shown) > 1:
            # the draw's seed is fixed per call, so a re-run or a fork draws the same option
            averaged = _digest32(self._next_key(action) + ":averaged")
        try:
            res = await self.client.complete(self._req(action, messages, max_tokens, choices=shown,
                                                        order_averaged=averaged))
            return Answer(res.text, True)
        except StructuredOutputError:
            return Answer(None, False)

    async def json(self, action: str, messages: list[dict[str, str]], model: type[BaseModel],
                   max_tokens: int | None = None) -> Answer:
        """A JSON answer validated against ``model`` (a dict); ``Answer(None, False)`` when none came."""
        req = self._req(action, messages, max_tokens or 64, json_schema=schema_of(model), validator=model)
        try:
            res = await self.client.complete(req)
            return Answer(json.loads(res.text), True)
        except StructuredOutputError:
            return Answer(None, False)
