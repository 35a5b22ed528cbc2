"""An instant OpenAI-compatible server for tests and overhead benchmarks.

``python -m simulation.testing.stub_server --port P [--no-extras]``. Chat answers are
deterministic functions of the request: a choice from ``structured_outputs``, schema-valid JSON
for ``response_format``, short text otherwise; embeddings are seeded unit vectors of the text.
With ``--no-extras`` it behaves like a plain OpenAI-compatible server (no ``/version``, structured
fields ignored, choices answered in prose) to exercise validation and repair.
"""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
from aiohttp import web

from ..llm.fake import schema_instance


def _h(obj: object) -> int:
    return int(hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(), digest_size=8).hexdigest(), 16)


def make_app(extras: bool = True, dim: int = 384) -> web.Application:
    stats = {"chat": 0, "embeddings": 0}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        stats["chat"] += 1
        h = _h(body["messages"])
        so = body.get("structured_outputs") if extras else None
        rf = body.get("response_format") if extras else None
        if so and "choice" in so:
            text = so["choice"][h % len(so["choice"])]
        elif rf and rf.get("type") == "json_schema":
            text = json.dumps(schema_instance(rf["json_schema"]["schema"], h))
        elif not extras and "Answer with exactly one of:" in body["messages"][-1]["content"]:
            opts = body["messages"][-1]["content"].rsplit("one of:", 1)[1].strip().rstrip(".").split(", ")
            text = f"I choose {opts[h % len(opts)]}."
        elif not extras:
            text = "Well, let me think about it."
        else:
            text = f"Answer {h % 997}."
        out = {"id": "stub", "object": "chat.completion", "model": body.get("model", "stub"),
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": sum(len(m["content"]) // 4 for m in body["messages"]),
                         "completion_tokens": max(1, len(text) // 4)}}
        return web.json_response(out)

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        stats["embeddings"] += 1
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, t in enumerate(texts):
            v = np.random.default_rng(_h(t) % (2**63)).standard_normal(dim)
            data.append({"index": i, "object": "embedding", "embedding": (v / np.linalg.norm(v)).round(6).tolist()})
        return web.json_response({"data": data, "usage": {"prompt_tokens": len(texts)}})

    async def health(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version(_r: web.Request) -> web.Response:
        return web.json_response({"version": "stub"})

    async def get_stats(_r: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application(client_max_size=64 * 2**20)
    app.add_routes([web.post("/v1/chat/completions", chat), web.post("/v1/embeddings", embeddings),
                    web.get("/health", health), web.get("/stats", get_stats)])
    if extras:
        app.add_routes([web.get("/version", version)])
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-extras", action="store_true")
    a = ap.parse_args()
    web.run_app(make_app(extras=not a.no_extras), host=a.host, port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
