"""Choices answered with the position bias averaged out (``llm.order_averaged``).

A small model answers many binary decisions by position alone (job seeking's ``search_decision``:
the first listed option 99% of the time, whichever it is). Shuffling the options turns that bias into
noise; it does not remove it. Here a choice call is answered instead from the model's probability of
each option averaged over orders of the options (all orders of two or three, else a seeded sample),
one option drawn from that average with a seed fixed per call: the model's preference for the
options' content, kept as a distribution. The argmax would turn a 60/40 preference into 100/0.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from .agent_llm import other_orders, reordered
from .scoring import OptionScorer
from .types import ChatClient, ChatRequest, ChatResult, LLMError

ORDERS = 5  # orders sampled besides the shown one where there are more than three options


async def averaged_probs(scorer: OptionScorer, messages: list[dict[str, str]], shown: list[str],
                         model: str | None = None, k: int = ORDERS, key: str = "") -> dict[str, float] | None:
    """Each option's probability averaged over ``shown`` and its other orders.

    All other orders of two or three options, else ``k`` drawn with ``key``; None when the prompt
    states no order to move.
    """
    orders = other_orders(shown, k, key)
    if not orders or reordered(messages, shown, shown) is None:
        return None
    each = await asyncio.gather(*(scorer.option_probs(reordered(messages, shown, o) or messages, o, model=model)
                                  for o in [shown, *orders]))
    return {o: sum(p[o] for p in each) / len(each) for o in shown}


def drawn_option(probs: dict[str, float], key: str) -> str | None:
    """One option drawn from ``probs`` with ``random.Random(key)``; None when none has probability.

    The options are taken in sorted order, so the draw does not depend on the order shown.
    """
    total = sum(max(0.0, v) for v in probs.values())
    if total <= 0:
        return None
    x = random.Random(key).random() * total
    for option, p in sorted(probs.items()):
        x -= max(0.0, p)
        if x < 0:
            return option
    return sorted(probs)[-1]


class OrderAveragingClient:
    """Answers requests marked ``order_averaged`` from averaged option probabilities; passes the rest on.

    ``scorer`` gives option probabilities (a vLLM server's, or :class:`~.scoring.FakeOptionScorer`),
    anything with ``option_probs`` and ``aclose``; a pool of them goes through :class:`ScorerPool`.
    """

    def __init__(self, inner: ChatClient, scorer: Any, k: int = ORDERS):
        self.inner = inner
        self.scorer = scorer
        self.k = k

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The drawn option for a marked choice request, else the inner client's answer."""
        if request.order_averaged is None:
            return await self.inner.complete(request)
        shown = list(request.choices or ())
        key = f"averaged:{request.order_averaged}"
        probs = await averaged_probs(self.scorer, request.messages, shown, request.model, self.k, key)
        if probs is None:
            # AgentLLM marks only calls whose prompt states the order: anything else is a caller's bug
            raise LLMError(f"{request.tag.action}: an order-averaged call needs a prompt stating its options' "
                           "order (llm.shuffle_options)")
        text = drawn_option(probs, key)
        if text is None:
            raise LLMError(f"{request.tag.action}: no option has probability")
        return ChatResult(text=text, endpoint="order-averaged", finish_reason="order_averaged", model=request.model)

    async def aclose(self) -> None:
        """Close the inner client and the scorer."""
        await self.inner.aclose()
        await self.scorer.aclose()


class ScorerPool:
    """An option scorer over an :class:`~.pool.EndpointPool` of scorers: retries and failover as chat calls."""

    def __init__(self, pool: Any):
        self.pool = pool

    async def option_probs(self, messages: list[dict[str, str]], options: list[str],
                           model: str | None = None) -> dict[str, float]:
        """The probabilities from the pool's best endpoint serving ``model``."""
        got, _ep, _tries = await self.pool.call(lambda s: s.option_probs(messages, options, model=model), model)
        return got

    async def aclose(self) -> None:
        """Close every endpoint's scorer."""
        for ep in self.pool.endpoints:
            await ep.client.aclose()
