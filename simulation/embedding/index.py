"""A searchable set of unit vectors with ids: exact inner-product search, batched across agents.

Agents of a group search concurrently; queries that arrive in the same event-loop tick go to faiss
as one matrix (one BLAS call instead of thousands of single-vector scans). The final ranking is
recomputed per query with a fixed-order dot product, so a result never depends on which other
queries happened to share its batch: a replayed run ranks exactly as the recorded one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import faiss
import numpy as np

_MARGIN = 8  # extra candidates fetched before the exact re-rank


class VectorIndex:
    """``await index.search(query, k)`` -> ids of the k best open items, best first.

    ``exclude(ids)`` hides items (a filled job, a watched film) by rebuilding the index over the
    rest; it is meant for changes between phases, not per query. Picklable: it travels to agent
    groups on other processes as ids plus vectors.
    """

    def __init__(self, ids: list[str], vectors: np.ndarray, batch_max: int = 1024):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        self.ids = list(ids)
        self.vectors = vectors
        self.batch_max = batch_max
        self.excluded: frozenset[str] = frozenset()
        self._build()

    def _build(self) -> None:
        keep = [i for i, x in enumerate(self.ids) if x not in self.excluded]
        self._rows = np.asarray(keep, dtype=np.int64)
        dim = self.vectors.shape[1] if self.vectors.ndim == 2 and self.vectors.shape[1] else 1
        self._index = faiss.IndexFlatIP(dim)
        if keep:
            self._index.add(self.vectors[self._rows])
        self._queue: list[tuple[np.ndarray, int, asyncio.Future]] = []
        self._scheduled = False

    def __len__(self) -> int:
        return len(self._rows)

    def __getstate__(self) -> dict[str, Any]:
        return {"ids": self.ids, "vectors": self.vectors, "batch_max": self.batch_max, "excluded": self.excluded}

    def __setstate__(self, s: dict[str, Any]) -> None:
        self.ids, self.vectors, self.batch_max, self.excluded = s["ids"], s["vectors"], s["batch_max"], s["excluded"]
        self._build()

    def exclude(self, ids: Iterable[str]) -> None:
        new = frozenset(ids)
        if new != self.excluded:
            self.excluded = new
            self._build()

    def search_now(self, queries: np.ndarray, k: int) -> list[list[str]]:
        """Synchronous batched search: one list of ids per query row."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self._rows) == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        want = min(len(self._rows), k + _MARGIN)
        _s, cand = self._index.search(q, want)
        out = []
        for qi, row in zip(q, cand, strict=True):
            rows = self._rows[row[row >= 0]]
            exact = [float(np.dot(self.vectors[r], qi)) for r in rows]
            order = sorted(range(len(rows)), key=lambda j: (-exact[j], rows[j]))
            out.append([self.ids[rows[j]] for j in order[:k]])
        return out

    async def search(self, query: np.ndarray, k: int) -> list[str]:
        """Queue one query; every query queued in this tick is answered by one faiss call."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((np.asarray(query, dtype=np.float32).reshape(-1), k, fut))
        if len(self._queue) >= self.batch_max:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        if not queue:
            return
        kmax = max(k for _, k, _ in queue)
        try:
            results = self.search_now(np.stack([q for q, _, _ in queue]), kmax)
        except Exception as e:  # every waiter gets the error, none hangs
            for _, _, f in queue:
                if not f.done():
                    f.set_exception(e)
            return
        for (_, k, f), res in zip(queue, results, strict=True):
            if not f.done():
                f.set_result(res[:k])
