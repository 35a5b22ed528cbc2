"""Memory: the token budget is enforced, items are bounded, reflection fires at its threshold."""

from __future__ import annotations

import numpy as np

from simulation.config.models import LLMSettings, MemoryConfig
from simulation.llm import AgentLLM, FakeChatClient
from simulation.memory import AgentMemory, ByteTokenCounter, default_token_counter


class Host:
    def __init__(self, tokens=None):
        self.round = 1
        self.tokens = tokens or default_token_counter()
        self.llm = AgentLLM(FakeChatClient(lambda r: "7" if r.choices else "an insight"), LLMSettings(), "a", 1, "p")

    async def embed(self, texts):
        rng = np.random.default_rng(abs(hash(texts[0])) % 2**32)
        v = rng.standard_normal((len(texts), 16)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


async def test_token_budget_is_enforced():
    for counter in (default_token_counter(), ByteTokenCounter()):
        cfg = MemoryConfig(type="short_long", short_term_size=10, token_budget=40, importance="fixed")
        mem, host = AgentMemory(cfg), Host(counter)
        for i in range(12):
            await mem.add(host, f"Memory number {i}: " + "a long sentence about many things " * 3)
        text = await mem.recall(host, "things")
        assert text and counter.count(text) <= 40


async def test_long_term_is_bounded_and_state_round_trips():
    cfg = MemoryConfig(type="short_long", long_term_max_items=5, importance="fixed")
    mem, host = AgentMemory(cfg), Host()
    for i in range(20):
        host.round = i
        await mem.add(host, f"event {i}")
    assert len(mem) == 5 and mem.vecs.shape[0] == 5
    other = AgentMemory(cfg)
    other.set_state(mem.get_state())
    assert other.texts == mem.texts and np.array_equal(other.vecs, mem.vecs)
    assert await other.retrieve(host, "event 19") == await mem.retrieve(host, "event 19")


async def test_reflection_fires_at_threshold():
    cfg = MemoryConfig(type="short_long_reflection", importance="llm", reflection={"threshold": 20})
    mem, host = AgentMemory(cfg), Host()
    for i in range(3):  # importance 7 each: 21 >= 20 after the third
        await mem.add(host, f"thing {i}")
    assert mem.reflections == 1 and any(t.startswith("Insight:") for t in mem.texts)


async def test_none_memory_stores_nothing():
    mem, host = AgentMemory(MemoryConfig(type="none")), Host()
    await mem.add(host, "x")
    assert len(mem) == 0 and await mem.recall(host, "x") == ""


def test_token_counting_is_the_same_on_a_host_with_nothing_prepared(tmp_path, monkeypatch):
    """A fresh cache (no converted model) counts with the model's tokenizer too, not the byte bound:
    prompts cut by it, and so replay keys, do not depend on what a host prepared."""
    import simulation.services.model_assets as assets
    from simulation.memory.tokens import ByteTokenCounter, HFTokenCounter, default_token_counter

    text = "Sophia Chen, 32, Master's in Data Science. Experience: Data Analyst at Data Insights Co."
    prepared = default_token_counter()
    monkeypatch.setenv("GENSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(assets, "cache_root", lambda: tmp_path)
    default_token_counter.cache_clear()
    try:
        fresh = default_token_counter()
        assert isinstance(fresh, HFTokenCounter) and isinstance(prepared, HFTokenCounter)
        assert fresh.count(text) == prepared.count(text) < ByteTokenCounter().count(text)
        assert (tmp_path / "tokenizers").is_dir() and not (tmp_path / "models").exists()
    finally:
        default_token_counter.cache_clear()
