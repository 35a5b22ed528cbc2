"""Which model answers which agent: settings, seeded A/B shares, pool routing, the record and the replay key."""

from __future__ import annotations

import pytest

from simulation.config.models import LLMSettings
from simulation.llm import Endpoint, EndpointPool
from simulation.llm.agent_llm import AgentLLM
from simulation.llm.cache import CachingClient, ResponseCache
from simulation.llm.pool import ChatPool
from simulation.llm.recording import RecordingClient
from simulation.llm.routing import ModelRouting, ab_unit, routing_from_settings
from simulation.llm.types import ChatRequest, ChatResult, LLMError

AGENTS = [f"a{i:03d}" for i in range(400)]


def test_by_type_share_and_explicit_agents():
    r = ModelRouting(seed=3, by_type={"employer": "big"})
    assert r.model_for("a1", "seeker") is None and r.model_for("e1", "employer") == "big"
    r.assign("tuned", share=0.5, types=["seeker"])
    treated = {a for a in AGENTS if r.model_for(a, "seeker") == "tuned"}
    assert 160 < len(treated) < 240, "about half, seeded"
    assert treated == {a for a in AGENTS if ab_unit(3, a) < 0.5}
    assert all(r.model_for(a, "employer") == "big" for a in AGENTS), "other types keep their model"
    r.assign("special", agents=["a001"])
    assert r.model_for("a001", "seeker") == "special"
    # the same agents stay treated when a later adapter replaces the first on the same share
    r.assign("tuned-2", share=0.5, types=["seeker"])
    assert {a for a in AGENTS if r.model_for(a, "seeker") == "tuned-2"} == treated
    assert ModelRouting.from_data(r.to_data()) == r
    other_seed = ModelRouting(seed=4)
    other_seed.assign("tuned", share=0.5)
    assert {a for a in AGENTS if other_seed.model_for(a, "seeker") == "tuned"} != treated


def test_covering_assignment_retires_the_rest():
    r = ModelRouting()
    r.assign("one", share=0.5)
    assert r.default_needed() and r.used_names() == {"one"}
    r.assign("two")
    assert not r.default_needed() and r.used_names() == {"two"}


def test_settings_give_the_start_routing():
    s = LLMSettings(model_by_type={"employer": "judge-ish"}, adapter="/x/adapters/fix-1", adapter_share=0.25)
    r = routing_from_settings(s, 9)
    assert r.by_type == {"employer": "judge-ish"} and r.assignments[0].model == "fix-1"
    assert r.assignments[0].share == 0.25
    with pytest.raises(ValueError):
        LLMSettings(adapter="/x", adapter_name="bad name!")


def test_replay_key_includes_the_model():
    base = ChatRequest([{"role": "user", "content": "hi"}])
    tuned = ChatRequest([{"role": "user", "content": "hi"}], model="tuned")
    assert base.key() != tuned.key()
    assert ChatRequest([{"role": "user", "content": "hi"}], model="tuned").key() == tuned.key()


class Named:
    """A fake endpoint client that says which model it was asked for."""

    def __init__(self, name: str):
        self.name = name
        self.asked: list[str | None] = []

    async def complete(self, req: ChatRequest) -> ChatResult:
        self.asked.append(req.model)
        return ChatResult(text=f"from {self.name}", model=req.model or self.name)

    async def aclose(self) -> None:
        return None


class Sink:
    def __init__(self):
        self.rows: list[tuple] = []

    def add_llm_call(self, row: tuple) -> None:
        self.rows.append(row)


async def test_agents_calls_go_to_their_model_and_are_recorded_with_it():
    base, merged = Named("base"), Named("merged")
    pool = EndpointPool([Endpoint("base", base, 4, models=frozenset({"base", "smol"})),
                         Endpoint("merged", merged, 4, models=frozenset({"tuned"}), default=False)])
    sink = Sink()
    client = RecordingClient(ChatPool(pool), sink)
    settings = LLMSettings()
    routing = ModelRouting(seed=1)
    routing.assign("tuned", agents=["a2"])
    for agent in ("a1", "a2"):
        llm = AgentLLM(client, settings, agent, 1, "p", 1, routing.model_for(agent, "x"))
        await llm.chat("talk", [{"role": "user", "content": "hi"}])
    assert base.asked == [None] and merged.asked == ["tuned"]
    assert [row[-1] for row in sink.rows] == ["base", "tuned"], "llm_calls.model names who answered"
    keys = [row[5] for row in sink.rows]
    # a replay answers each agent from its own model's recording; asking another model misses
    cache = ResponseCache({})
    for row, k in zip(sink.rows, keys, strict=True):
        cache.put(k, ChatResult(text=row[7], model=row[-1]))
    replay = CachingClient(None, cache, replay_only=True)
    llm = AgentLLM(replay, settings, "a2", 1, "p", 1, "tuned")
    assert await llm.chat("talk", [{"role": "user", "content": "hi"}]) == "from merged"
    with pytest.raises(LLMError):
        await AgentLLM(replay, settings, "a2", 1, "p", 1, None).chat("talk", [{"role": "user", "content": "hi"}])
    with pytest.raises(LLMError, match="no chat endpoint serves model 'nope'"):
        await AgentLLM(client, settings, "a3", 1, "p", 1, "nope").chat("talk", [{"role": "user", "content": "hi"}])
