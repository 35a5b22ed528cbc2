"""The real embedding server next to the real chat server: no process of it busy-polls."""

from __future__ import annotations

from pathlib import Path

import httpx


def _tree(root: int) -> list[str]:
    """Names of ``root`` and all its descendants."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1: text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        pid = int(stat.parent.name)
        parents[pid], names[pid] = int(fields[1]), name
    tree, todo = [], [root]
    while todo:
        p = todo.pop()
        tree.append(names.get(p, "?"))
        todo += [c for c, pp in parents.items() if pp == p]
    return tree


def test_embedding_server_has_no_polling_worker(real_servers):
    _chat, emb = real_servers
    r = httpx.post(f"{emb.base_url}/embeddings", json={"model": emb.spec.served_name, "input": ["a", "b"]}, timeout=60)
    r.raise_for_status()
    assert len(r.json()["data"]) == 2 and len(r.json()["data"][0]["embedding"]) == 384
    # a separate VLLM::Worker would spin on its shared-memory queue for 1 s after every request
    assert not [n for n in _tree(emb.pid) if "Worker" in n], _tree(emb.pid)
