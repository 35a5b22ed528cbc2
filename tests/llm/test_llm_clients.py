"""Pool routing and failover, structured validation and repair, cache and replay, recording."""

from __future__ import annotations

import pytest

from simulation.llm import (
    CachingClient,
    ChatRequest,
    ChatResult,
    Endpoint,
    EndpointPool,
    FakeChatClient,
    ReplayMiss,
    ResponseCache,
    StructuredClient,
)
from simulation.llm.pool import ChatPool
from simulation.llm.structured import StructuredOutputError, match_choice
from simulation.llm.types import CallTag, RetriableError


class Dead:
    calls = 0

    async def complete(self, req):
        Dead.calls += 1
        raise RetriableError("connection refused", endpoint_down=True)

    async def aclose(self):
        pass


async def test_failover_routes_around_dead_endpoint():
    live = FakeChatClient()
    pool = EndpointPool([Endpoint("dead", Dead(), 4), Endpoint("live", live, 4)], max_retries=4, backoff_base_s=0.001)
    client = ChatPool(pool)
    for i in range(20):
        res = await client.complete(ChatRequest([{"role": "user", "content": f"q{i}"}]))
        assert res.endpoint == "fake"
    assert live.calls == 20
    assert pool.endpoints[0].calls <= 2  # marked down after its failure, not retried every call


async def test_least_loaded_routing_spreads_calls():
    a, b = FakeChatClient(), FakeChatClient()
    pool = EndpointPool([Endpoint("a", a, 2), Endpoint("b", b, 2)])
    import asyncio

    await asyncio.gather(*(ChatPool(pool).complete(ChatRequest([{"role": "user", "content": str(i)}])) for i in range(40)))
    assert a.calls + b.calls == 40 and min(a.calls, b.calls) >= 10


async def test_own_host_endpoints_first_while_they_have_room():
    import asyncio

    class Slow(FakeChatClient):
        async def complete(self, request):
            await asyncio.sleep(0.01)
            return await super().complete(request)

    local, remote = Slow(), Slow()
    pool = EndpointPool([Endpoint("remote", remote, 4, host="h2"), Endpoint("local", local, 4, host="h1")],
                        prefer_host="h1")
    for i in range(10):  # one at a time: the local endpoint always has room
        await ChatPool(pool).complete(ChatRequest([{"role": "user", "content": str(i)}]))
    assert (local.calls, remote.calls) == (10, 0)
    await asyncio.gather(*(ChatPool(pool).complete(ChatRequest([{"role": "user", "content": f"x{i}"}]))
                           for i in range(16)))
    assert remote.calls > 0, "when the local endpoint is full, calls spill over"


def test_match_choice_is_lenient_but_unambiguous():
    assert match_choice(" Yes.", ["yes", "no"]) == "yes"
    assert match_choice("I choose reject", ["pass", "reject"]) == "reject"
    assert match_choice("yes or no", ["yes", "no"]) is None


async def test_repair_then_give_up():
    answers = iter(["maybe", "perhaps", "unsure"])
    inner = FakeChatClient(lambda r: next(answers))
    client = StructuredClient(inner, max_repairs=1)
    with pytest.raises(StructuredOutputError):
        await client.complete(ChatRequest([{"role": "user", "content": "?"}], choices=["yes", "no"]))
    assert inner.calls == 2  # one try plus one bounded repair

    answers2 = iter(["maybe", "Yes!"])
    res = await StructuredClient(FakeChatClient(lambda r: next(answers2)), 2).complete(
        ChatRequest([{"role": "user", "content": "?"}], choices=["yes", "no"]))
    assert res.text == "yes" and res.repairs == 1


async def test_replay_cache_hits_and_misses():
    cache = ResponseCache()
    rec = CachingClient(FakeChatClient(), cache)
    req = ChatRequest([{"role": "user", "content": "hi"}], tag=CallTag("a-1", 1, "p", "act", 1))
    first = await rec.complete(req)
    replay = CachingClient(None, cache, replay_only=True)
    again = await replay.complete(ChatRequest([{"role": "user", "content": "hi"}], tag=CallTag("a-1", 1, "p", "act", 1)))
    assert again.text == first.text and again.cached
    with pytest.raises(ReplayMiss):
        await replay.complete(ChatRequest([{"role": "user", "content": "hi"}], tag=CallTag("a-2", 1, "p", "act", 1)))


def test_request_key_depends_on_caller():
    m = [{"role": "user", "content": "x"}]
    assert ChatRequest(m, tag=CallTag("a", 1)).key() != ChatRequest(m, tag=CallTag("b", 1)).key()
    assert ChatRequest(m, tag=CallTag("a", 1)).key() == ChatRequest(m, tag=CallTag("a", 1)).key()


def test_chat_result_defaults():
    assert ChatResult("x").valid and not ChatResult("x").cached
