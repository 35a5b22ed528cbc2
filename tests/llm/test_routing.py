"""Which model answers which agent: settings, seeded A/B shares, pool routing, the record and the replay key."""

from __future__ import annotations

from types import SimpleNamespace

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


async def test_a_scoped_adapter_answers_its_decisions_only():
    """llm.adapter_actions: the treated agents' calls of those decisions go to the adapter, their other
    calls (and calls of no decision, like an interview's) to the model beneath; the checkpoint keeps it."""
    from simulation.core.context import StepContext

    s = LLMSettings(adapter="/x/adapters/fix-1", adapter_share=0.5, adapter_actions=["screen"])
    r = routing_from_settings(s, 3)
    treated = [a for a in AGENTS if ab_unit(3, a) < 0.5]
    control = [a for a in AGENTS if ab_unit(3, a) >= 0.5]
    assert all(r.model_for(a, "x", "screen") == "fix-1" for a in treated)
    assert all(r.model_for(a, "x", "apply") is None and r.model_for(a, "x") is None for a in treated)
    assert all(r.model_for(a, "x", "screen") is None for a in control)
    assert r.scoped() and r.default_needed(), "the base model still answers the treated agents' other calls"
    whole = ModelRouting(seed=3)
    whole.assign("fix-1")
    assert not whole.scoped() and not whole.default_needed()
    whole.assign("fix-2", actions=["screen"])
    assert not whole.default_needed() and whole.used_names() == {"fix-1", "fix-2"}
    assert whole.model_for("a1", "x", "apply") == "fix-1" and whole.model_for("a1", "x", "screen") == "fix-2"
    assert ModelRouting.from_data(r.to_data()) == r
    data = r.to_data()
    del data["assignments"][0]["actions"]  # a checkpoint written before scoping: every call
    assert ModelRouting.from_data(data).model_for(treated[0], "x", "apply") == "fix-1"
    with pytest.raises(ValueError, match="adapter_actions scopes llm.adapter, and no adapter is set"):
        LLMSettings(adapter_actions=["screen"])
    # a step's LLM asks each call's model by the call's decision
    named = Named("any")
    services = SimpleNamespace(llm_client=named, llm_settings=LLMSettings(), seed=1, routing=r)
    ctx = StepContext(SimpleNamespace(id=treated[0], agent_type="x"), 1, "p", [], services)
    for action in ("apply", "screen", "apply"):
        await ctx.llm.chat(action, [{"role": "user", "content": "hi"}])
    other = StepContext(SimpleNamespace(id=control[0], agent_type="x"), 1, "p", [], services)
    await other.llm.chat("screen", [{"role": "user", "content": "hi"}])
    assert named.asked == [None, "fix-1", None, None]


def test_routing_from_settings_and_deployed_assignments():
    from simulation.llm.routing import Assignment, adapter_paths, adapter_route, routing_with_deployed

    plain = LLMSettings()
    assert adapter_route(plain) is None and adapter_paths(plain) == {}
    s = LLMSettings(adapter="/ads/fix-1", adapter_share=0.5, adapter_types=["seeker"], model_by_type={"employer": "big"})
    assert adapter_route(s) == "fix-1" and adapter_paths(s) == {"fix-1": "/ads/fix-1"}
    assert adapter_route(LLMSettings(adapter="/ads/fix-1", adapter_name="named")) == "named"
    r = routing_from_settings(s, seed=5)
    assert r.seed == 5 and r.default is None and r.by_type == {"employer": "big"}
    assert r.assignments == [Assignment("fix-1", 0.5, ("seeker",), ())]
    treated = {a for a in AGENTS if r.model_for(a, "seeker") == "fix-1"}
    assert treated == {a for a in AGENTS if ab_unit(5, a) < 0.5}
    assert all(r.model_for(a, "other") is None for a in AGENTS), "adapter_types limits the adapter"
    deployed = [{"model": "fix-2", "share": 1.0, "types": [], "agents": ["a001"]}]
    rd = routing_with_deployed(s, 5, deployed)
    assert rd.assignments == [*r.assignments, Assignment("fix-2", 1.0, (), ("a001",))]
    assert rd.model_for("a001", "other") == "fix-2" and rd.seed == 5


def test_assignment_share_edges_and_defaults():
    from simulation.llm.routing import Assignment

    full, none = Assignment("m", 1.0), Assignment("m", 0.0)
    assert all(full.covers(1, a, "t") for a in AGENTS) and not any(none.covers(1, a, "t") for a in AGENTS)
    # the draw is strict: an agent whose draw equals the share is not covered
    a0 = AGENTS[0]
    assert not Assignment("m", ab_unit(1, a0)).covers(1, a0, "t")
    assert Assignment("m", min(1.0, ab_unit(1, a0) + 1e-9)).covers(1, a0, "t")
    assert 0.0 <= ab_unit(1, a0) < 1.0 and ab_unit(1, a0) != ab_unit(2, a0)
    assert ab_unit(7, "x") == int.from_bytes(__import__("hashlib").blake2b(b"7:ab:x", digest_size=8).digest(),
                                             "big") / 2**64
    r = ModelRouting(seed=1, default="base", by_type={"employer": "big"})
    assert r.model_for("a", "seeker") == "base" and r.model_for("e", "employer") == "big"
    assert r.names() == {"base", "big"} and ModelRouting().names() == set()
    back = ModelRouting.from_data({"seed": 3, "default": "base", "by_type": {"t": "m"},
                                   "assignments": [{"model": "x", "share": 0.5, "types": ["t"], "agents": []}]})
    assert back == ModelRouting(3, "base", {"t": "m"}, [Assignment("x", 0.5, ("t",), ())])
    assert ModelRouting.from_data({}) == ModelRouting(0, None, {}, [])


def test_covering_finds_the_first_assignment_too():
    r = ModelRouting()
    r.assign("all")
    r.assign("half", share=0.5)
    r.assign("some", agents=["a1"])
    assert r.used_names() == {"all", "half", "some"} and not r.default_needed()
    r2 = ModelRouting(default="base")
    r2.assign("half", share=0.5)
    assert r2.used_names() == {"base", "half"} and not r2.default_needed()
    r3 = ModelRouting()
    r3.assign("half", share=0.5)
    r3.assign("x", types=["t"])
    r3.assign("y", share=0.3)
    assert r3.default_needed() and r3.used_names() == {"half", "x", "y"}
    r4 = ModelRouting()
    r4.assign("all")
    r4.assign("half", share=0.5)
    assert not r4.default_needed() and r4.used_names() == {"all", "half"}
