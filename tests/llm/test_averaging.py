"""``llm.order_averaged``: choices answered from option probabilities averaged over orders."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3

import pytest

from simulation.cli import main as gensim_main
from simulation.config.models import LLMSettings
from simulation.llm.agent_llm import AgentLLM, options_line
from simulation.llm.averaging import OrderAveragingClient, averaged_probs, drawn_option
from simulation.llm.fake import FakeChatClient
from simulation.llm.scoring import FakeOptionScorer
from simulation.llm.types import CallTag, ChatRequest, LLMError

OPTIONS = ["red", "green", "blue"]


def _prompt(shown: list[str], topic: str = "Pick a colour.") -> list[dict[str, str]]:
    return [{"role": "system", "content": topic}, {"role": "user", "content": "Which?" + options_line(shown)}]


def test_averaged_probs_equal_a_direct_average_over_every_order():
    scorer = FakeOptionScorer(position_weight=2.0)
    got = asyncio.run(averaged_probs(scorer, _prompt(OPTIONS), OPTIONS))
    orders = [list(p) for p in itertools.permutations(OPTIONS)]
    each = [asyncio.run(scorer.option_probs(_prompt(o), o)) for o in orders]
    assert got == pytest.approx({o: sum(p[o] for p in each) / 6 for o in OPTIONS})
    # the average does not depend on the order shown: position is averaged out, content stays
    for o in orders:
        assert asyncio.run(averaged_probs(scorer, _prompt(o), o)) == pytest.approx(got)
    assert asyncio.run(averaged_probs(scorer, [{"role": "user", "content": "Which?"}], OPTIONS)) is None, \
        "a prompt stating no order has no other order to ask"


def test_a_drawn_option_follows_the_probabilities_and_not_their_order():
    probs = {"a": 0.7, "b": 0.2, "c": 0.1}
    draws = [drawn_option(probs, f"k{i}") for i in range(4000)]
    shares = {o: draws.count(o) / len(draws) for o in probs}
    assert shares == pytest.approx(probs, abs=0.03)
    assert [drawn_option(dict(reversed(probs.items())), f"k{i}") for i in range(200)] == draws[:200]
    assert drawn_option({"a": 0.0, "b": 0.0}, "k") is None


class _Counting(FakeChatClient):
    def __init__(self):
        super().__init__(lambda r: r.choices[0])
        self.seen: list[ChatRequest] = []

    async def complete(self, request: ChatRequest):
        self.seen.append(request)
        return await super().complete(request)


def test_only_marked_requests_are_answered_from_the_average():
    inner = _Counting()
    client = OrderAveragingClient(inner, FakeOptionScorer(position_weight=5.0))
    plain = ChatRequest(messages=_prompt(OPTIONS), choices=OPTIONS)
    assert asyncio.run(client.complete(plain)).text == "red" and inner.seen == [plain]
    marked = ChatRequest(messages=_prompt(OPTIONS), choices=OPTIONS, order_averaged=7, tag=CallTag(action="vote"))
    res = asyncio.run(client.complete(marked))
    assert len(inner.seen) == 1 and res.finish_reason == "order_averaged" and res.text in OPTIONS
    assert marked.key() != ChatRequest(messages=_prompt(OPTIONS), choices=OPTIONS, tag=CallTag(action="vote")).key()
    with pytest.raises(LLMError, match=r"^vote: an order-averaged call needs a prompt stating its options' order "
                                       r"\(llm.shuffle_options\)$"):
        asyncio.run(client.complete(ChatRequest(messages=[{"role": "user", "content": "Which?"}], choices=OPTIONS,
                                                order_averaged=7, tag=CallTag(action="vote"))))


def test_agents_answer_listed_decisions_without_position_bias():
    """A model with a strong position bias (the first listed gets e^5 times the last's weight): its
    own answers are first-listed almost always; averaged, they follow content, whatever order is shown."""
    scorer = FakeOptionScorer(position_weight=5.0)

    async def argmax_in_shown_order(r: ChatRequest) -> str:
        p = await scorer.option_probs(r.messages, r.choices)
        return max(p, key=p.get)

    class Biased(FakeChatClient):
        async def complete(self, request):
            res = await super().complete(request)
            res.text = await argmax_in_shown_order(request)
            return res

    def answers(averaged: list[str]) -> list[str]:
        settings = LLMSettings(shuffle_options=True, order_averaged=averaged)
        client = OrderAveragingClient(Biased(), scorer)
        out = []
        for i in range(300):
            llm = AgentLLM(client, settings, f"voter-{i}", 1, "act", run_seed=3)
            msgs = [{"role": "system", "content": f"voter {i % 3}"}, {"role": "user", "content": "Which?"}]
            out.append(asyncio.run(llm.choose("vote", msgs, list(OPTIONS))).value)
        return out

    raw = answers([])
    first = sum(1 for i, v in enumerate(raw) if v == _shown_first(i)) / len(raw)
    assert first > 0.95, "the biased model answers by position"
    avg = answers(["vote"])
    first = sum(1 for i, v in enumerate(avg) if v == _shown_first(i)) / len(avg)
    assert 0.15 < first < 0.55, f"averaged: first-listed {first:.0%}, near a third"
    # the content preference stays: each prompt's (voter's) averaged answers follow its own probabilities
    for voter in range(3):
        msgs = [{"role": "system", "content": f"voter {voter}"}, {"role": "user", "content": "Which?"}]
        probs = asyncio.run(averaged_probs(scorer, [*msgs[:-1], {**msgs[-1], "content": "Which?" +
                                                                  options_line(OPTIONS)}], OPTIONS))
        picks = [v for i, v in enumerate(avg) if i % 3 == voter]
        top = max(probs, key=probs.get)
        assert picks.count(top) / len(picks) == pytest.approx(probs[top], abs=0.2)


def _shown_first(i: int) -> str:
    """The first option shown to voter ``i``'s call (AgentLLM's seeded per-call order)."""
    import random

    shown = list(OPTIONS)
    random.Random(f"3:voter-{i}:1:act:vote:1").shuffle(shown)
    return shown[0]


def test_order_averaged_needs_the_order_stated():
    with pytest.raises(ValueError, match="order_averaged needs shuffle_options"):
        LLMSettings(order_averaged=["vote"])


def test_a_run_records_averaged_answers_and_replays_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert gensim_main(["run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "2", "--out", str(run),
                        "--no-progress", "llm.shuffle_options=true", "llm.order_averaged=[\"vote\"]"]) == 0
    with sqlite3.connect(run / "run.sqlite") as db:
        calls = list(db.execute("SELECT action, completion, choices, finish_reason, endpoint FROM llm_calls"))
    votes = [c for c in calls if c[0] == "vote"]
    assert votes and all(c[3] == "order_averaged" and c[4] == "order-averaged" for c in votes)
    assert all(c[1] in json.loads(c[2]) for c in votes)
    assert all(c[3] != "order_averaged" for c in calls if c[0] != "vote"), "only the listed decision"
    capsys.readouterr()
    assert gensim_main(["run", "--replay", str(run), "--out", str(tmp_path / "replay"), "--no-progress"]) == 0
    with sqlite3.connect(tmp_path / "replay" / "run.sqlite") as db:
        again = [r for r in db.execute("SELECT action, completion, choices FROM llm_calls") if r[0] == "vote"]
    assert sorted(again) == sorted(c[:3] for c in votes)


class _Asked(FakeOptionScorer):
    """A fake scorer that notes the model each request named, and whether it was closed."""

    def __init__(self, name: str = "", position_weight: float = 2.0):
        super().__init__(position_weight)
        self.name, self.models, self.closed = name, [], False

    async def option_probs(self, messages, options, model=None):
        self.models.append(model)
        # each order is asked with the prompt stating that order
        assert messages[-1]["content"].endswith(options_line(options)), (messages[-1]["content"], options)
        return await super().option_probs(messages, options, model)

    async def aclose(self):
        self.closed = True


def test_the_client_draws_the_same_option_for_the_same_call_from_the_model_it_names():
    """The draw and the sampled orders (five options: ``k`` more) are fixed by the request's seed, the
    scorer is asked for the request's model, and unnormalised weights draw as their shares."""
    five = ["a", "b", "c", "d", "e"]
    scorer = _Asked()
    client = OrderAveragingClient(FakeChatClient(), scorer, k=2)

    def ask(seed: int) -> str:
        return asyncio.run(client.complete(ChatRequest(messages=_prompt(five), choices=five, order_averaged=seed,
                                                       model="m", tag=CallTag(action="vote")))).text

    got = [ask(s) for s in range(60)]
    assert len(scorer.models) == 60 * 3 and set(scorer.models) == {"m"}, "the shown order and k=2 others, model m"
    assert got == [ask(s) for s in range(60)], "the same call draws the same option"
    for s in range(60):
        probs = asyncio.run(averaged_probs(FakeOptionScorer(2.0), _prompt(five), five, "m", 2, f"averaged:{s}"))
        assert got[s] == drawn_option(probs, f"averaged:{s}")
    assert len(set(got)) > 1, "different calls draw apart"
    draws = [drawn_option({"a": 2.0, "b": 2.0}, f"w{i}") for i in range(400)]
    assert 0.4 < draws.count("a") / 400 < 0.6, "weights need not sum to 1"


def test_a_scorer_pool_asks_an_endpoint_serving_the_model_and_closes_them_all():
    from simulation.llm.averaging import ScorerPool
    from simulation.llm.pool import Endpoint, EndpointPool

    one, two = _Asked("one"), _Asked("two")
    pool = ScorerPool(EndpointPool([Endpoint("one", one, 4, models=frozenset({"base"})),
                                    Endpoint("two", two, 4, models=frozenset({"adapter-1"}), default=False)],
                                   kind="option scorer"))
    got = asyncio.run(pool.option_probs(_prompt(OPTIONS), OPTIONS, model="adapter-1"))
    assert got == pytest.approx(asyncio.run(FakeOptionScorer(2.0).option_probs(_prompt(OPTIONS), OPTIONS)))
    assert two.models == ["adapter-1"] and one.models == []
    asyncio.run(pool.option_probs(_prompt(OPTIONS), OPTIONS))
    assert one.models == [None], "the default model on a default endpoint"
    with pytest.raises(LLMError, match="no option scorer endpoint serves model 'other'"):
        asyncio.run(pool.option_probs(_prompt(OPTIONS), OPTIONS, model="other"))
    asyncio.run(pool.aclose())
    assert one.closed and two.closed


def test_a_call_whose_options_all_have_no_probability_is_an_error():
    class Zero(FakeOptionScorer):
        async def option_probs(self, messages, options, model=None):
            return {o: 0.0 for o in options}

    client = OrderAveragingClient(FakeChatClient(), Zero())
    with pytest.raises(LLMError, match="^vote: no option has probability$"):
        asyncio.run(client.complete(ChatRequest(messages=_prompt(OPTIONS), choices=OPTIONS, order_averaged=1,
                                                tag=CallTag(action="vote"))))
