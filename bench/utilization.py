"""How much of the real CPU vLLM server's throughput a simulation uses.

    python bench/utilization.py [--agents 40] [--rounds 1] [--concurrency 32]

One run, side by side against the same server: (1) a plain load generator keeps ``--concurrency``
requests in flight with prompts and completion lengths like the simulation's, for the same time,
and measures generated tokens/s; (2) job seeking runs against it and its generated tokens/s is
measured. The last line is JSON with both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.runner import RunOptions, run_simulation  # noqa: E402
from simulation.services.vllm_server import (  # noqa: E402
    chat_spec,
    embedding_spec,
    log_dir,
    start_server,
    wait_healthy,
)


async def load_generator(base_url: str, model: str, prompts: list[tuple[str, int]], concurrency: int,
                         seconds: float) -> float:
    """Saturate the server with recorded prompts; return generated tokens per second."""
    done_tokens = 0
    stop_at = time.perf_counter() + seconds
    i = 0
    async with aiohttp.ClientSession() as s:
        async def worker() -> None:
            nonlocal done_tokens, i
            while time.perf_counter() < stop_at:
                prompt, max_tokens = prompts[i % len(prompts)]
                i += 1
                body = {"model": model, "messages": json.loads(prompt), "max_tokens": max_tokens,
                        "temperature": 0.0, "ignore_eos": False}
                async with s.post(base_url + "/chat/completions", json=body) as r:
                    data = await r.json()
                    done_tokens += data["usage"]["completion_tokens"]

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done_tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
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
        t0 = time.perf_counter()
        summary = asyncio.run(run_simulation(RunOptions(scenario=str(folder), agents=a.agents, rounds=a.rounds,
                                                        out=str(tmp / "run"), progress=False)))
        sim_s = time.perf_counter() - t0
        with sqlite3.connect(tmp / "run" / "run.sqlite") as db:
            rows = db.execute("SELECT prompt, completion_tokens, choices FROM llm_calls").fetchall()
        sim_tps = summary["completion_tokens"] / sim_s
        prompts = [(p, max(1, c)) for p, c, _ in rows if p]
        plain_tps = asyncio.run(load_generator(chat.base_url, chat.spec.served_name, prompts, a.concurrency,
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
