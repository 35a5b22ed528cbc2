"""One agent's memory, stored as plain arrays so that it checkpoints as data.

Retrieval follows Generative Agents: score = recency (decay per *simulated* round) + relevance
(cosine on unit vectors, mapped to [0, 1]) + importance (LLM-rated 1-10, scaled), each weighted.
The recalled text never exceeds the configured token budget.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..config.models import MemoryConfig
from .tokens import TokenCounter

IMPORTANCE_CHOICES = [str(i) for i in range(1, 11)]


class MemoryHost(Protocol):
    """What memory needs from a step context."""

    round: int
    llm: Any
    tokens: TokenCounter

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts``."""


class AgentMemory:
    """Short-term list plus bounded long-term store with optional reflection."""

    __slots__ = ("cfg", "short", "texts", "rounds", "importance", "vecs", "since_reflection", "reflections")

    def __init__(self, cfg: MemoryConfig):
        self.cfg = cfg
        self.short: list[list] = []  # [text, round]
        self.texts: list[str] = []
        self.rounds: list[int] = []
        self.importance: list[float] = []
        self.vecs: np.ndarray | None = None  # (n, d) float16, unit rows
        self.since_reflection = 0.0
        self.reflections = 0

    @property
    def long_term(self) -> bool:
        """Whether this memory type keeps a long-term store (retrieved by similarity)."""
        return self.cfg.type in ("short_long", "short_long_reflection")

    def __len__(self) -> int:
        return len(self.texts) if self.long_term else len(self.short)

    async def add(self, ctx: MemoryHost, text: str, importance: float | None = None, reflect: bool = True) -> None:
        """Remember ``text`` at the current simulated round."""
        if self.cfg.type == "none" or not text:
            return
        if self.cfg.short_term_size:
            self.short.append([text, ctx.round])
            del self.short[: max(0, len(self.short) - self.cfg.short_term_size)]
        if not self.long_term:
            return
        if importance is None:
            importance = await self._rate(ctx, text)
        vec = (await ctx.embed([text]))[0].astype(np.float16)
        self.texts.append(text)
        self.rounds.append(ctx.round)
        self.importance.append(float(importance))
        self.vecs = vec[None, :] if self.vecs is None else np.vstack([self.vecs, vec[None, :]])
        if len(self.texts) > self.cfg.long_term_max_items:
            self._evict(ctx.round)
        if reflect and self.cfg.type == "short_long_reflection":
            self.since_reflection += float(importance)
            if self.since_reflection >= self.cfg.reflection.threshold:
                await self._reflect(ctx)

    async def _rate(self, ctx: MemoryHost, text: str) -> float:
        if self.cfg.importance == "fixed":
            return self.cfg.fixed_importance
        msgs = [{"role": "system", "content": "Rate how important a memory is, from 1 (mundane) to 10 (life-changing). Answer with a number."},
                {"role": "user", "content": f"Memory: {text}\nImportance (1-10):"}]
        choice, ok = await ctx.llm.choose("memory.importance", msgs, IMPORTANCE_CHOICES)
        # bookkeeping, not an agent's decision: an unratable memory gets the configured fixed importance
        return float(choice) if ok else self.cfg.fixed_importance

    def _evict(self, now: int) -> None:
        rec = self.cfg.recency_decay ** (now - np.asarray(self.rounds, dtype=np.float64))
        keep_score = rec + np.asarray(self.importance) / 10.0
        drop = int(np.argmin(keep_score))
        for lst in (self.texts, self.rounds, self.importance):
            del lst[drop]
        assert self.vecs is not None
        self.vecs = np.delete(self.vecs, drop, axis=0)

    async def _reflect(self, ctx: MemoryHost) -> None:
        self.since_reflection = 0.0
        recent = "\n".join(f"- {t}" for t in self.texts[-5:])
        msgs = [{"role": "system", "content": "You draw one short, high-level insight from memories."},
                {"role": "user", "content": f"Memories:\n{recent}\nOne insight:"}]
        insight = await ctx.llm.chat("memory.reflect", msgs, max_tokens=self.cfg.reflection.max_tokens)
        self.reflections += 1
        await self.add(ctx, f"Insight: {insight}", importance=8.0, reflect=False)

    async def retrieve(self, ctx: MemoryHost, query: str, k: int | None = None) -> list[str]:
        """Top-k long-term memories for ``query`` by recency + relevance + importance."""
        if not self.long_term or not self.texts:
            return []
        k = k or self.cfg.retrieve_k
        q = (await ctx.embed([query]))[0].astype(np.float32)
        assert self.vecs is not None
        rel = (self.vecs.astype(np.float32) @ q + 1.0) / 2.0
        rec = self.cfg.recency_decay ** (ctx.round - np.asarray(self.rounds, dtype=np.float64))
        imp = np.asarray(self.importance) / 10.0
        score = self.cfg.weight_recency * rec + self.cfg.weight_relevance * rel + self.cfg.weight_importance * imp
        order = np.argsort(-score, kind="stable")[:k]
        return [self.texts[i] for i in order]

    async def recall(self, ctx: MemoryHost, query: str | None = None) -> str:
        """Memory text for a prompt: recent items, then relevant ones, within the token budget."""
        if self.cfg.type == "none":
            return ""
        lines = [f"- {t}" for t, _ in self.short]
        if query is not None:
            shown = {t for t, _ in self.short}
            lines += [f"- {t}" for t in await self.retrieve(ctx, query) if t not in shown]
        return fit_budget(lines, self.cfg.token_budget, ctx.tokens)

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the memory (plain data; vectors as lists)."""
        return {
            "short": self.short, "texts": self.texts, "rounds": self.rounds, "importance": self.importance,
            "vecs": None if self.vecs is None else self.vecs.tobytes(),
            "dim": 0 if self.vecs is None else int(self.vecs.shape[1]),
            "since_reflection": self.since_reflection, "reflections": self.reflections,
        }

    def set_state(self, s: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        self.short = [list(x) for x in s["short"]]
        self.texts, self.rounds, self.importance = list(s["texts"]), list(s["rounds"]), list(s["importance"])
        self.vecs = None if s["vecs"] is None else np.frombuffer(s["vecs"], dtype=np.float16).reshape(-1, s["dim"]).copy()
        self.since_reflection, self.reflections = s["since_reflection"], s["reflections"]


def fit_budget(lines: list[str], budget: int, tokens: TokenCounter) -> str:
    """Join lines until the token budget is spent; the last line may be cut to fit."""
    out: list[str] = []
    for line in lines:
        candidate = "\n".join([*out, line])
        if tokens.count(candidate) <= budget:
            out.append(line)
            continue
        used = tokens.count("\n".join(out)) + (1 if out else 0) if out else 0
        cut = tokens.truncate(line, budget - used - 1)
        if cut and tokens.count("\n".join([*out, cut])) <= budget:
            out.append(cut)
        break
    return "\n".join(out)
