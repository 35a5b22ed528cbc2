"""How much of the real CPU vLLM server's throughput a simulation uses.

    python bench/utilization.py [--agents 240] [--rounds 1] [--concurrency 64]

One run, side by side against the same server: (1) a plain load generator keeps ``--concurrency``
requests in flight with prompts and completion lengths like the simulation's, for the same time,
and measures generated tokens/s; (2) job seeking runs against it and its generated tokens/s over its
rounds (agent creation and the job board's setup excluded) is measured. The last line is JSON with
both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.llm import ChatRequest, OpenAIChatClient  # noqa: E402
from simulation.runner import RunOptions, run_simulation  # noqa: E402
from simulation.services.vllm_server import (  # noqa: E402
    chat_spec,
    embedding_spec,
    log_dir,
    start_server,
    wait_healthy,
)


async def load_generator(base_url: str, model: str, bodies: list[dict], concurrency: int, seconds: float) -> float:
    """Saturate the server with the simulation's own requests; return generated tokens per second."""
    done_tokens = 0
    stop_at = time.perf_counter() + seconds
    i = 0
    client = OpenAIChatClient(base_url, model, vllm_extras=True, max_connections=concurrency)

    async def worker() -> None:
        nonlocal done_tokens, i
        while time.perf_counter() < stop_at:
            body = bodies[i % len(bodies)]
            i += 1
            res = await client.complete(ChatRequest(**body))
            done_tokens += res.completion_tokens

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done_tokens / (time.perf_counter() - t0)
    finally:
        await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight: the plain generator and the simulation alike")
    a = ap.parse_args()
    chat = start_server(chat_spec(log_file=str(log_dir() / "bench_chat.log")), wait=False)
    emb = start_server(embedding_spec(log_file=str(log_dir() / "bench_emb.log")), wait=False)
    tmp = Path(tempfile.mkdtemp(prefix="gensim-util-"))
    try:
        wait_healthy(chat, 600)
        wait_healthy(emb, 600)
        folder = tmp / "job_seeking"
        shutil.copytree(Path(__file__).resolve().parents[1] / "simulation" / "examples" / "job_seeking", folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "configs" / "model_configs.json").write_text(json.dumps([
            {"config_name": "vllm", "model_name": chat.spec.served_name, "client_args": {"base_url": chat.base_url},
             "max_concurrency": a.concurrency, "vllm_extras": "on"},
            {"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
             "client_args": {"base_url": emb.base_url}}]))
        summary = asyncio.run(run_simulation(RunOptions(scenario=str(folder), agents=a.agents, rounds=a.rounds,
                                                        out=str(tmp / "run"), progress=False)))
        sim_s = summary["wall_s"]  # the rounds themselves
        with sqlite3.connect(tmp / "run" / "run.sqlite") as db:
            rows = db.execute("SELECT prompt, completion_tokens, choices, json_schema FROM llm_calls").fetchall()
        sim_tps = summary["completion_tokens"] / sim_s
        # the same requests, constraints included, each asking for as many tokens as it produced
        bodies = [{"messages": json.loads(p), "max_tokens": max(1, c), "temperature": 0.0,
                   "choices": json.loads(ch) if ch else None, "json_schema": json.loads(js) if js else None}
                  for p, c, ch, js in rows if p]
        random.Random(0).shuffle(bodies)  # the whole round's mix, not just its first phases
        plain_tps = asyncio.run(load_generator(chat.base_url, chat.spec.served_name, bodies, a.concurrency,
                                               max(20.0, min(sim_s, 60.0))))
        print(json.dumps({"agents": summary["agents"], "llm_calls": summary["llm_calls"],
                          "sim_wall_s": round(sim_s, 2), "sim_gen_tok_s": round(sim_tps, 1),
                          "plain_gen_tok_s": round(plain_tps, 1), "ratio": round(sim_tps / plain_tps, 3)}))
    finally:
        chat.stop()
        emb.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
