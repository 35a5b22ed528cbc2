"""Option probabilities: the constrained decoder's arithmetic, the requests made of a vLLM server, and
the fake's position bias averaging out over orders."""

from __future__ import annotations

import itertools
import math

import pytest
from aiohttp import web

from simulation.llm.scoring import (
    FakeOptionScorer,
    VLLMOptionScorer,
    branch_points,
    constrained_probs,
    option_paths,
)
from simulation.llm.types import LLMError

L = math.log


def test_constrained_probs_renormalise_where_options_part():
    # pass | re-ject: they part at the first token; "ject" after "re" is forced, so it costs nothing
    got = constrained_probs({"pass": [(1, L(0.6))], "reject": [(2, L(0.1)), (3, L(0.9))]})
    assert got == pytest.approx({"pass": 6 / 7, "reject": 1 / 7})
    # "1" is a prefix of "10": after "1" the end token and "0" part them
    got = constrained_probs({"1": [(33, L(0.5)), (0, L(0.2))], "10": [(33, L(0.5)), (32, L(0.3))],
                             "2": [(34, L(0.25))]})
    assert got == pytest.approx({"1": 2 / 3 * 0.4, "10": 2 / 3 * 0.6, "2": 1 / 3})
    assert sum(got.values()) == pytest.approx(1.0)


def test_option_paths_end_only_where_an_option_begins_another_and_branch_points():
    # "1" begins "10" (and "1" is needed to tell them apart after it); "2" and "10" begin nothing else
    paths = option_paths({"1": [33], "10": [33, 32], "2": [34]}, [2])
    assert paths == {"1": [33, 2], "10": [33, 32], "2": [34]}
    # they part at the start (33 or 34) and after 33 (end or "0"); nowhere else
    assert branch_points(list(paths.values())) == {(): [33, 34], (33,): [2, 32]}
    # options that part at their first token need no end token and one branch point
    paths = option_paths({"pass": [5467], "reject": [257, 680]}, [2])
    assert paths == {"pass": [5467], "reject": [257, 680]}
    assert branch_points(list(paths.values())) == {(): [257, 5467]}


PROMPT = [7, 8, 9]
VOCAB = {"pass": [5467], "reject": [257, 680], "1": [33], "10": [33, 32]}
LOGP = {5467: -1.0, 257: -2.0, 680: -0.1, 33: -0.5, 32: -1.5, 2: -0.7}  # 2: the end token


@pytest.fixture()
async def server():
    seen: list[dict] = []

    async def tokenize(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"path": "tokenize", **body})
        if "messages" in body:
            answered = body["messages"][-1]["role"] == "assistant"
            return web.json_response({"tokens": PROMPT + ([2, 198] if answered else [])})
        return web.json_response({"tokens": VOCAB[body["prompt"]]})

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"path": "completions", **body})
        if body["model"] == "llama":
            return web.Response(status=400, text="unknown field logprobs")
        if body["model"] == "flaky" and sum(x["path"] == "completions" for x in seen) == 1:
            return web.Response(status=503, text="busy")  # the first request only: retried
        if "prompt_logprobs" in body:  # the exact log-probability of every prompt token
            lps = [None] + [{str(t): {"logprob": LOGP.get(t, -9.0), "rank": 1}} for t in body["prompt"][1:]]
            return web.json_response({"choices": [{"text": "x", "prompt_logprobs": lps}]})
        # the next token's top list; token 32 ("0") is never in it
        top = {f"token_id:{t}": lp for t, lp in LOGP.items() if t != 32}
        assert body["return_tokens_as_token_ids"] and body["logprobs"] == 20 and body["max_tokens"] == 1
        return web.json_response({"choices": [{"text": "x", "logprobs": {"top_logprobs": [top]}}]})

    app = web.Application()
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_vllm_scorer_asks_where_options_part_and_ends_only_prefixes(server):
    url, seen = server
    s = VLLMOptionScorer(url, "smol")
    msgs = [{"role": "user", "content": "Hire?"}]
    got = await s.option_probs(msgs, ["pass", "reject"])
    p, r = math.exp(-1.0), math.exp(-2.0)
    assert got == pytest.approx({"pass": p / (p + r), "reject": r / (p + r)})
    asked = [x for x in seen if x["path"] == "completions"]
    assert [x["prompt"] for x in asked] == [PROMPT], "one request: the options part at their first token"
    assert asked[0]["model"] == "smol" and "prompt_logprobs" not in asked[0]
    seen.clear()
    got = await s.option_probs(msgs, ["10", "1", "pass"])
    # first token: "1"/"10" (33) against "pass"; then after 33: the end token (2) against "0" (32)
    first = {33: math.exp(-0.5), 5467: math.exp(-1.0)}
    e, z = math.exp(-0.7), math.exp(-1.5)
    share = first[33] / sum(first.values())
    assert got == pytest.approx({"1": share * e / (e + z), "10": share * z / (e + z), "pass": 1 - share})
    asked = sorted((tuple(x["prompt"]), "prompt_logprobs" in x) for x in seen if x["path"] == "completions")
    assert asked == [((*PROMPT,), False), ((*PROMPT, 33), False), ((*PROMPT, 33, 32), True)], \
        "a branch point each, and the exact log-probability of the token the top list lacks"
    seen.clear()
    assert await s.option_probs(msgs, ["pass", "reject"], model="flaky") == pytest.approx(
        {"pass": p / (p + r), "reject": r / (p + r)}), "a transient failure is retried"
    with pytest.raises(LLMError, match="need a vLLM server"):
        await s.option_probs(msgs, ["pass", "reject"], model="llama")
    await s.aclose()


async def test_the_fake_s_position_bias_averages_out_over_every_order():
    s = FakeOptionScorer(position_weight=2.0)
    msgs = [{"role": "system", "content": "You are Ann."}]
    opts = ["a", "b", "c"]
    every = [await s.option_probs(msgs, list(o)) for o in itertools.permutations(opts)]
    assert all(max(p, key=p.get) == o[0] for p, o in zip(every, itertools.permutations(opts), strict=True)), \
        "position dominates each order"
    content = {o: math.exp(FakeOptionScorer.content_logit(msgs, o)) for o in opts}
    # by hand: the mean over the 6 orders of softmax(content - 2 * place)
    by_hand = {o: sum(content[o] * math.exp(-2.0 * order.index(o)) / sum(content[x] * math.exp(-2.0 * order.index(x))
                                                                       for x in opts)
                      for order in itertools.permutations(opts)) / 6 for o in opts}
    averaged = {o: sum(p[o] for p in every) / 6 for o in opts}
    assert averaged == pytest.approx(by_hand)
    assert max(averaged, key=averaged.get) == max(content, key=content.get), "the content's preference is left"
