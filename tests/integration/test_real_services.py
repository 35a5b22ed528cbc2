"""The real embedding server next to the real chat server: no process of it busy-polls."""

from __future__ import annotations

import httpx
import pytest

from simulation.testing.procs import descendants, process_table

pytestmark = pytest.mark.integration


def test_embedding_server_has_no_polling_worker(real_servers):
    _chat, emb = real_servers
    r = httpx.post(f"{emb.base_url}/embeddings", json={"model": emb.spec.served_name, "input": ["a", "b"]}, timeout=60)
    r.raise_for_status()
    assert len(r.json()["data"]) == 2 and len(r.json()["data"][0]["embedding"]) == 384
    # a separate VLLM::Worker would spin on its shared-memory queue for 1 s after every request
    table = process_table()
    names = [table[p][1] for p in descendants(emb.pid, table)]
    assert names and not [n for n in names if "Worker" in n], names
