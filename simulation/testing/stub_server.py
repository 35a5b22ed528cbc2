"""An instant OpenAI-compatible server for tests and overhead benchmarks.

``python -m simulation.testing.stub_server --port P [--no-extras] [--live]``. Chat answers are
deterministic functions of the request: a choice from ``structured_outputs``, schema-valid JSON
for ``response_format``, short text otherwise; embeddings are seeded unit vectors of the text.
With ``--no-extras`` it behaves like a plain OpenAI-compatible server (no ``/version``, structured
fields ignored, choices answered in prose) to exercise validation and repair.

``--live`` marks every free-text answer with a tag naming this process and the call
(``[live NNNNNN-NNNNNN]``), so two live calls never give the same text and a replay or resume that
quietly asks the server again cannot reproduce a recording. Decisions (choices, JSON) and vectors
are computed from the request with the tags taken out, so two live runs still take the same path
and can be compared once :func:`strip_live` is applied to both.

``--off-menu`` answers every choice in prose (a server that never picks an option);
``--fail-share F`` answers a fixed share of chat requests (by request) with HTTP 500.

``--schema-only`` behaves like llama.cpp: no ``/version``, vLLM's ``structured_outputs`` ignored,
the standard ``response_format`` JSON schema honoured (a string ``enum`` is answered quoted).

``--misbehave MODES`` (comma-separated, ``all`` for every one) makes a share (``--misbehave-share``)
of chat requests, picked by request, go wrong the way real servers do: ``empty`` or ``null``
content, ``offmenu`` (no option), ``badjson``, ``length`` (cut short, ``finish_reason: length``),
``nousage``, ``400``; and, on a request's first try only, ``429``, ``500``, ``drop`` (connection
closed), ``html`` (an HTML page with status 200) and ``slow`` (a 10-second reply). ``/stats``
counts each under ``misbehaved``.

``POST /v1/load_lora_adapter`` (vLLM's runtime LoRA call) makes the stub answer requests for that
adapter's name too, with answers that differ from the base's (the adapter's name is hashed in);
a request for a model it does not serve gets HTTP 404, as from vLLM.

``GET /stats`` counts answered chat and embedding calls. ``POST /hold`` with ``{"after": N}`` lets
``N`` chat calls in all be answered and parks the rest until ``POST /release``; a parked call whose
client went away meanwhile is neither answered nor counted (tests use it to kill a client at a
moment when nothing it asked for is in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re

import numpy as np
from aiohttp import web

from ..llm.fake import schema_instance

LIVE_TAG = re.compile(r"\[live [0-9-]*\]?")


def strip_live(text: str) -> str:
    """``text`` with every live tag (also one cut short by a token budget) replaced by ``[live]``."""
    return LIVE_TAG.sub("[live]", text)


def _h(obj: object) -> int:
    return int(hashlib.blake2b(strip_live(json.dumps(obj, sort_keys=True)).encode(), digest_size=8).hexdigest(), 16)


MISBEHAVIOURS = ("empty", "null", "offmenu", "badjson", "length", "nousage", "400", "429", "500", "drop", "html",
                 "slow")
FIRST_TRY_ONLY = {"429", "500", "drop", "html", "slow"}


def make_app(extras: bool = True, dim: int = 384, live: bool = False, off_menu: bool = False,
             fail_share: float = 0.0, schema_only: bool = False, misbehave: tuple[str, ...] = (),
             misbehave_share: float = 0.3) -> web.Application:
    stats: dict = {"chat": 0, "embeddings": 0, "held": 0, "dropped": 0, "failed": 0, "misbehaved": {}}
    tried: set[int] = set()  # requests already answered once (transient faults hit the first try only)
    nonce = f"{random.SystemRandom().randrange(10**6):06d}"  # digits only: the tag's token count never varies
    gate = {"after": None, "open": asyncio.Event()}
    gate["open"].set()
    adapters: dict[str, str] = {}  # name -> path
    served: dict[str, str] = {}  # the first model name asked for is the base's

    def answer(body: dict) -> str:
        model = body.get("model", "stub")
        h = _h(body["messages"]) if model not in adapters else _h([model, body["messages"]])
        so = body.get("structured_outputs") if extras and not schema_only else None
        rf = body.get("response_format") if extras or schema_only else None
        last = body["messages"][-1]["content"]
        if off_menu and (so and "choice" in so or "Answer with exactly one of:" in last):
            return "Hmm, hard to say."  # a server that never picks one of the options
        if so and "choice" in so:
            return so["choice"][h % len(so["choice"])]
        if rf and rf.get("type") == "json_schema":
            schema = rf["json_schema"]["schema"]
            if schema.get("type") == "string" and "enum" in schema:  # a choice, the portable way
                return json.dumps(schema["enum"][h % len(schema["enum"])])
            return json.dumps(schema_instance(schema, h))
        if not extras and "Answer with exactly one of:" in last:
            opts = last.rsplit("one of:", 1)[1].strip().rstrip(".").split(", ")
            # a plain server that stays off-menu now and then: some calls cannot be repaired
            return "I would rather not say." if h % 5 == 0 else f"I choose {opts[h % len(opts)]}."
        if not extras and "matching this schema:" in last:
            schema = json.loads(last.rsplit("matching this schema:", 1)[1])
            return f"Sure: {json.dumps(schema_instance(schema, h))}"
        text = "Well, let me think about it." if not extras else f"Answer {h % 997}."
        return f"{text} [live {nonce}-{stats['chat'] + 1:06d}]" if live else text

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        if gate["after"] is not None and stats["chat"] >= gate["after"]:
            stats["held"] += 1
            await gate["open"].wait()
            stats["held"] -= 1
            if request.transport is None or request.transport.is_closing():
                stats["dropped"] += 1
                return web.Response(status=499)
        if fail_share and _h(body["messages"]) % 1000 < fail_share * 1000:
            stats["failed"] += 1  # the same requests fail every time: retries cannot rescue them
            return web.json_response({"error": "stub: internal error"}, status=500)
        model = body.get("model", "stub")
        # the first name asked that is no adapter is the base model's
        if model not in adapters and model != served.setdefault("base", model):
            return web.json_response({"error": f"The model `{model}` does not exist."}, status=404)
        fault = None
        if misbehave:
            key = _h([body["messages"], body.get("max_tokens")])
            if key % 1000 < misbehave_share * 1000:
                fault = misbehave[(key // 1000) % len(misbehave)]
                if fault in FIRST_TRY_ONLY and key in tried:
                    fault = None
            tried.add(key)
        if fault is not None:
            stats["misbehaved"][fault] = stats["misbehaved"].get(fault, 0) + 1
            if fault in ("400", "429", "500"):
                return web.json_response({"error": f"stub: HTTP {fault}"}, status=int(fault))
            if fault == "drop":
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=499)
            if fault == "html":
                return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
            if fault == "slow":
                await asyncio.sleep(10)
        stats["chat"] += 1
        for field in ("structured_outputs", "response_format"):
            if field in body:
                stats[field] = stats.get(field, 0) + 1
        text = answer(body)
        finish = "stop"
        if fault in ("empty", "null"):
            text = "" if fault == "empty" else None
        elif fault == "offmenu":
            text = "None of those, really."
        elif fault == "badjson":
            text = '{"apply": [1, 2'
        elif fault == "length":
            text, finish = text[:2], "length"
        out = {"id": f"stub-{nonce}-{stats['chat']}", "object": "chat.completion", "model": body.get("model", "stub"),
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
               "usage": {"prompt_tokens": sum(len(m["content"]) // 4 for m in body["messages"]),
                         "completion_tokens": max(1, len(text or "") // 4)}}
        if fault == "nousage":
            del out["usage"]
        return web.json_response(out)

    async def models(_r: web.Request) -> web.Response:
        names = [served.get("base", "stub"), *adapters]
        return web.json_response({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        stats["embeddings"] += 1
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, t in enumerate(texts):
            v = np.random.default_rng(_h(t) % (2**63)).standard_normal(dim)
            data.append({"index": i, "object": "embedding", "embedding": (v / np.linalg.norm(v)).round(6).tolist()})
        return web.json_response({"data": data, "usage": {"prompt_tokens": len(texts)}})

    async def load_lora(request: web.Request) -> web.Response:
        body = await request.json()
        adapters[body["lora_name"]] = body["lora_path"]
        stats["adapters"] = sorted(adapters)
        return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    async def health(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version(_r: web.Request) -> web.Response:
        return web.json_response({"version": "stub"})

    async def get_stats(_r: web.Request) -> web.Response:
        return web.json_response({**stats, "nonce": nonce if live else None})

    async def hold(request: web.Request) -> web.Response:
        gate["after"] = int((await request.json())["after"])
        gate["open"].clear()
        return web.json_response(stats)

    async def release(_r: web.Request) -> web.Response:
        gate["after"] = None
        gate["open"].set()
        return web.json_response(stats)

    app = web.Application(client_max_size=64 * 2**20)
    app.add_routes([web.post("/v1/chat/completions", chat), web.post("/v1/embeddings", embeddings),
                    web.get("/health", health), web.get("/stats", get_stats), web.post("/hold", hold),
                    web.post("/release", release), web.post("/v1/load_lora_adapter", load_lora),
                    web.get("/v1/models", models)])
    if extras and not schema_only:
        app.add_routes([web.get("/version", version)])
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-extras", action="store_true")
    ap.add_argument("--live", action="store_true", help="tag every free-text answer with this process and call")
    ap.add_argument("--off-menu", action="store_true", help="answer every choice in prose, never with an option")
    ap.add_argument("--fail-share", type=float, default=0.0, help="answer this share of chat requests HTTP 500")
    ap.add_argument("--schema-only", action="store_true", help="like llama.cpp: response_format only, no /version")
    ap.add_argument("--misbehave", default="", help=f"comma-separated faults, or all: {', '.join(MISBEHAVIOURS)}")
    ap.add_argument("--misbehave-share", type=float, default=0.3)
    a = ap.parse_args()
    faults = MISBEHAVIOURS if a.misbehave == "all" else tuple(f for f in a.misbehave.split(",") if f)
    web.run_app(make_app(extras=not a.no_extras, live=a.live, off_menu=a.off_menu, fail_share=a.fail_share,
                         schema_only=a.schema_only, misbehave=faults, misbehave_share=a.misbehave_share),
                host=a.host, port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
