"""Option probabilities from the real CPU vLLM server: they agree with its constrained answers."""

from __future__ import annotations

import asyncio

import pytest

from simulation.llm.agent_llm import options_line
from simulation.llm.http import OpenAIChatClient
from simulation.llm.scoring import VLLMOptionScorer
from simulation.llm.types import ChatRequest

pytestmark = pytest.mark.integration

CVS = ["10 years as a nurse, MSc in Nursing", "no experience, high school diploma", "3 years in sales, BA in Marketing",
       "PhD in Physics, 12 years of research", "2 years as a cashier"]


def test_probabilities_agree_with_the_constrained_answer(real_servers):
    chat, _ = real_servers

    async def go() -> None:
        scorer = VLLMOptionScorer(chat.base_url, chat.spec.served_name)
        client = OpenAIChatClient(chat.base_url, chat.spec.served_name)
        try:
            for cv in CVS:
                for order in (["pass", "reject"], ["reject", "pass"]):
                    msgs = [{"role": "system", "content": "You screen CVs for a senior nurse post."},
                            {"role": "user", "content": f"CV: {cv}. Pass or reject?" + options_line(order)}]
                    probs = await scorer.option_probs(msgs, order)
                    assert set(probs) == set(order) and abs(sum(probs.values()) - 1) < 1e-6
                    answer = await client.complete(ChatRequest(messages=msgs, max_tokens=4, temperature=0.0,
                                                               choices=order))
                    # options parting at their first token: the greedy constrained answer is the likelier one
                    assert answer.text == max(probs, key=probs.get), (cv, order, probs, answer.text)
            ten = [str(i) for i in range(1, 11)]
            msgs = [{"role": "user", "content": "How important is this memory, 1 to 10?" + options_line(ten)}]
            probs = await scorer.option_probs(msgs, ten)
            assert set(probs) == set(ten) and abs(sum(probs.values()) - 1) < 1e-6
            assert probs["1"] != probs["10"], "the end token tells 1 from 10"
        finally:
            await scorer.aclose()
            await client.aclose()

    asyncio.run(go())
