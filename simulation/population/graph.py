"""Seeded social graphs for scenarios whose agents have friends."""

from __future__ import annotations

import random
from typing import Any

from .build import agent_ids


def small_world(ids: list[str], degree: int, rewire: float, seed: int) -> dict[str, list[str]]:
    """A Watts-Strogatz graph: a ring where each agent knows ``degree`` neighbours, each edge rewired
    to a random agent with probability ``rewire``. Undirected, no self-loops, no duplicate edges."""
    n = len(ids)
    if n < 2 or degree < 1:
        return {i: [] for i in ids}
    half = max(1, min(degree, n - 1) // 2)
    rng = random.Random(f"small-world:{seed}:{n}:{degree}:{rewire}")
    adj: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for d in range(1, half + 1):
            j = (i + d) % n
            if rng.random() < rewire:  # rewire i-j to i-k, keeping the graph simple
                for _ in range(8):
                    k = rng.randrange(n)
                    if k != i and k not in adj[i]:
                        j = k
                        break
            if j != i:
                adj[i].add(j)
                adj[j].add(i)
    return {ids[i]: [ids[j] for j in sorted(adj[i])] for i in range(n)}


def neighbours(sim: Any, agent_type: str, degree: int = 4, rewire: float = 0.1) -> dict[str, list[str]]:
    """Every agent of ``agent_type`` in ``sim`` (the Simulator ``Environment.setup`` receives) with its
    neighbours in a seeded small-world graph: one call, for a world view that agents read as
    ``ctx.world.friends[self.id]``. Seeded by the run seed; the same on every re-run and replay."""
    ids = list(agent_ids(agent_type, sim.counts.get(agent_type, 0), sim.simulation.id_digits))
    return small_world(ids, degree, rewire, sim.simulation.seed)
