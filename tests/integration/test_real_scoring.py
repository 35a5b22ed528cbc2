"""Option probabilities from the real CPU vLLM server: they agree with its constrained answers."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from simulation.llm.agent_llm import options_line
from simulation.llm.averaging import averaged_probs
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


def test_a_run_answers_listed_decisions_from_the_real_models_averaged_probabilities(real_servers, tmp_path):
    """``llm.order_averaged`` on the real server: the votes come from the option scorer (pooled,
    the config name resolved to the served model), every other call from decoding."""
    from simulation.cli import main
    from tests.conftest import copy_scenario, set_models
    from tests.integration.conftest import real_models

    chat, emb = real_servers
    folder = copy_scenario(tmp_path, "polling")
    set_models(folder, real_models(chat, emb))
    run = tmp_path / "run"
    assert main(["run", str(folder), "--rounds", "1", "--out", str(run), "--no-progress", "llm.shuffle_options=true",
                 "llm.order_averaged=[vote]"]) == 0
    with sqlite3.connect(run / "run.sqlite") as db:
        calls = db.execute("SELECT action, prompt, completion, choices, valid, error, finish_reason FROM llm_calls").fetchall()
    votes = [c for c in calls if c[0] == "vote"]
    assert len(votes) == 10 and all(c[4] == 1 and c[5] is None and c[6] == "order_averaged" for c in votes)
    assert all(c[6] != "order_averaged" for c in calls if c[0] != "vote")

    async def recomputed() -> list[dict[str, float] | None]:
        scorer = VLLMOptionScorer(chat.base_url, chat.spec.served_name)
        try:
            return [await averaged_probs(scorer, json.loads(p), json.loads(ch)) for _, p, _, ch, *_ in votes]
        finally:
            await scorer.aclose()

    for (_, _, answer, shown, *_), probs in zip(votes, asyncio.run(recomputed()), strict=True):
        assert probs is not None and set(probs) == set(json.loads(shown)) and abs(sum(probs.values()) - 1) < 1e-6
        assert answer in probs and probs[answer] > 0.001, (answer, probs)
