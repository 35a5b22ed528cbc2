"""Pool routing and failover, structured validation and repair, cache and replay, recording."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from simulation.llm import (
    CachingClient,
    ChatRequest,
    ChatResult,
    Endpoint,
    EndpointOutage,
    EndpointPool,
    FakeChatClient,
    OpenAIChatClient,
    ReplayMiss,
    ResponseCache,
    StructuredClient,
)
from simulation.llm.pool import ChatPool
from simulation.llm.structured import StructuredOutputError, match_choice
from simulation.llm.types import CallTag, RetriableError
from simulation.services.vllm_server import free_port


async def test_failover_routes_around_dead_endpoint():
    """A real HTTP client on a port nothing listens on: its connection error marks the endpoint down."""
    dead = OpenAIChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", vllm_extras=False)
    live = FakeChatClient()
    pool = EndpointPool([Endpoint("dead", dead, 4), Endpoint("live", live, 4)], max_retries=4, backoff_base_s=2.0)
    client = ChatPool(pool)
    for i in range(20):
        res = await client.complete(ChatRequest([{"role": "user", "content": f"q{i}"}]))
        assert res.endpoint == "fake"
    await dead.aclose()
    assert live.calls == 20
    assert pool.endpoints[0].calls <= 2  # marked down after its failure, not retried every call


@pytest.fixture()
async def status_server():
    """An HTTP server answering every chat request with the status code in the request's model name."""
    async def chat(request: web.Request) -> web.Response:
        return web.Response(status=int((await request.json())["model"]), text="busy")

    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", chat)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


@pytest.mark.parametrize(("status", "down"), [(503, True), (502, True), (429, False), (500, False)])
async def test_http_errors_say_whether_the_endpoint_is_down(status_server, status, down):
    client = OpenAIChatClient(status_server, str(status), vllm_extras=False)
    with pytest.raises(RetriableError) as e:
        await client.complete(ChatRequest([{"role": "user", "content": "x"}]))
    await client.aclose()
    assert e.value.endpoint_down is down


async def test_connection_refused_is_an_endpoint_down_error():
    client = OpenAIChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", vllm_extras=False)
    with pytest.raises(RetriableError) as e:
        await client.complete(ChatRequest([{"role": "user", "content": "x"}]))
    await client.aclose()
    assert e.value.endpoint_down


class Slow(FakeChatClient):
    """Takes ``delay`` seconds a call, so calls in flight pile up as on a real server."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    async def complete(self, request):
        await asyncio.sleep(self.delay)
        return await super().complete(request)


async def test_routing_follows_load_under_concurrent_calls():
    """A slow and a fast endpoint with equal limits: calls pile up on the slow one, so the fast one
    gets most of them (routing by call count alone would split them evenly)."""
    slow, fast = Slow(0.05), Slow(0.005)
    pool = EndpointPool([Endpoint("slow", slow, 8), Endpoint("fast", fast, 8)])
    client = ChatPool(pool)

    async def user(u: int) -> None:
        for i in range(10):
            await client.complete(ChatRequest([{"role": "user", "content": f"{u}-{i}"}]))

    await asyncio.gather(*(user(u) for u in range(6)))
    assert slow.calls + fast.calls == 60
    assert fast.calls >= 3 * slow.calls, (fast.calls, slow.calls)


async def test_least_loaded_routing_spreads_calls():
    a, b = Slow(0.01), Slow(0.01)
    pool = EndpointPool([Endpoint("a", a, 2), Endpoint("b", b, 2)])
    await asyncio.gather(*(ChatPool(pool).complete(ChatRequest([{"role": "user", "content": str(i)}])) for i in range(40)))
    assert a.calls + b.calls == 40 and min(a.calls, b.calls) >= 15


async def test_own_host_endpoints_first_while_they_have_room():
    local, remote = Slow(0.01), Slow(0.01)
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


class Flaky(FakeChatClient):
    """Refuses connections until ``down_until`` (monotonic), then answers."""

    def __init__(self, down_for: float):
        super().__init__()
        self.down_until = time.monotonic() + down_for
        self.refused = 0

    async def complete(self, request):
        await asyncio.sleep(0.001)
        if time.monotonic() < self.down_until:
            self.refused += 1
            raise RetriableError("connection refused", endpoint_down=True)
        return await super().complete(request)


async def test_an_outage_is_waited_out_without_using_up_retries():
    ep = Flaky(down_for=1.0)
    pool = EndpointPool([Endpoint("only", ep, 64)], max_retries=1, backoff_base_s=0.05, backoff_max_s=0.2,
                        outage_limit_s=30)
    t0 = time.monotonic()
    out = await asyncio.gather(*(ChatPool(pool).complete(ChatRequest([{"role": "user", "content": str(i)}]))
                                 for i in range(64)))
    assert len(out) == 64 and ep.calls == 64 and ep.refused > 1
    # 64 calls failing together count as one failure: the only endpoint is probed again within 0.2 s
    assert time.monotonic() - t0 < 1.0 + 0.5


async def test_an_outage_past_the_limit_raises():
    pool = EndpointPool([Endpoint("only", Flaky(down_for=60), 4)], backoff_base_s=0.05, backoff_max_s=0.1,
                        outage_limit_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(EndpointOutage, match="no chat endpoint answered"):
        await ChatPool(pool).complete(ChatRequest([{"role": "user", "content": "x"}]))
    assert 0.5 <= time.monotonic() - t0 < 2.0
