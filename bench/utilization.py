"""How much of the real CPU vLLM server's throughput a simulation uses.

    python bench/utilization.py [--agents 240] [--rounds 3] [--kv-cache-gib 4] [--concurrency 64] [--trace FILE] [--keep DIR]

One run, side by side against the same server: (1) job seeking runs against it and its generated
tokens/s over its rounds (agent creation and the job board's setup excluded) is measured; (2) a
plain load generator keeps ``--concurrency`` requests in flight, replaying the simulation's own
requests shuffled (same prompts, constraints and completion lengths), and measures generated
tokens/s. The server's prefix cache is emptied before each side, so neither is served from what the
other left there. The last line is JSON with both, their ratio, and the simulation side's prefix-cache
hit rate (vLLM's ``prefix_cache_hits`` over ``prefix_cache_queries``, in tokens, while the rounds ran;
target: at least 0.6, met at the defaults: 0.615 on 2026-12-01; a KV cache too small for a round's
prompts, or a single round where every persona is new, gives less: README, Benchmarks).

``--trace FILE`` also prints, per phase, the server's mean running and waiting requests and its
prompt and generated tokens/s (sampled from ``/metrics``), and saves the samples to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
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


def reset_prefix_cache(base_url: str) -> None:
    req = urllib.request.Request(base_url.removesuffix("/v1") + "/reset_prefix_cache", method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def metric_totals(base_url: str, timeout: float = 10.0) -> dict[str, float]:
    """vLLM's metrics from ``/metrics``, summed over their labels, ``_total`` dropped (``vllm:prefix_cache_hits`` ...)."""
    out: dict[str, float] = {}
    for line in urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=timeout).read().decode().splitlines():
        if line.startswith("vllm:"):
            name = line.split("{", 1)[0].split(" ", 1)[0].removesuffix("_total")
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class ServerSampler(threading.Thread):
    """Polls vLLM's ``/metrics``: requests running and waiting, generated tokens so far."""

    def __init__(self, base_url: str, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.every_s = every_s
        self.samples: list[tuple[float, ...]] = []  # (t, running, waiting, generated, prompt, cache hits)
        self.halt = threading.Event()

    def run(self) -> None:
        want = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:generation_tokens",
                "vllm:prompt_tokens", "vllm:prefix_cache_hits")
        while not self.halt.is_set():
            try:
                totals = metric_totals(self.base_url, timeout=2)
                self.samples.append((time.perf_counter(), *(totals.get(n, 0.0) for n in want)))
            except OSError:
                pass
            self.halt.wait(self.every_s)

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """Between two times: mean running and waiting requests, the share of samples with none waiting,
        and generated, prompt and uncached prompt tokens/s."""
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return {}
        dt = s[-1][0] - s[0][0]
        return {"running": round(sum(x[1] for x in s) / len(s), 1), "waiting": round(sum(x[2] for x in s) / len(s), 1),
                "unsaturated": round(sum(x[2] == 0 for x in s) / len(s), 2),
                "gen_tok_s": round((s[-1][3] - s[0][3]) / dt, 1), "prompt_tok_s": round((s[-1][4] - s[0][4]) / dt, 1),
                "uncached_prompt_tok_s": round((s[-1][4] - s[0][4] - s[-1][5] + s[0][5]) / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight: the plain generator and the simulation alike")
    ap.add_argument("--trace", metavar="JSON", help="print the server's load per phase (stderr) and save the samples here")
    ap.add_argument("--keep", metavar="DIR", help="keep the simulation's run folder here")
    ap.add_argument("--kv-cache-gib", type=int, default=4,
                    help="the chat server's KV cache (embedded.kv_cache_gib; 4 holds a round of 240 agents' prompts)")
    a = ap.parse_args()
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # for /reset_prefix_cache: each side starts with a cold prefix cache
    chat = start_server(chat_spec(log_file=str(log_dir() / "bench_chat.log"),
                                  extra_env={"VLLM_CPU_KVCACHE_SPACE": str(a.kv_cache_gib)}), wait=False)
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
        marks: list[tuple[float, str]] = []
        sampler = ServerSampler(chat.base_url)
        if a.trace:
            sampler.start()

        def phase_starts(sim, r, phase) -> None:
            marks.append((time.perf_counter(), f"r{r} {phase.name}"))

        def round_ends(sim, r) -> None:
            marks.append((time.perf_counter(), "end"))

        hooks = {"before_phase": [phase_starts], "after_round": [round_ends]}
        reset_prefix_cache(chat.base_url)
        before = metric_totals(chat.base_url)
        summary = asyncio.run(run_simulation(RunOptions(scenario=str(folder), agents=a.agents, rounds=a.rounds,
                                                        out=str(tmp / "run"), progress=False, hooks=hooks)))
        after = metric_totals(chat.base_url)
        queries = after.get("vllm:prefix_cache_queries", 0) - before.get("vllm:prefix_cache_queries", 0)
        hits = after.get("vllm:prefix_cache_hits", 0) - before.get("vllm:prefix_cache_hits", 0)
        hit_rate = round(hits / queries, 3) if queries else None
        sim_s = summary["wall_s"]  # the rounds themselves
        with sqlite3.connect(tmp / "run" / "run.sqlite") as db:
            rows = db.execute("SELECT prompt, completion_tokens, choices, json_schema FROM llm_calls").fetchall()
        sim_tps = summary["completion_tokens"] / sim_s
        # the same requests, constraints included, each asking for as many tokens as it produced
        bodies = [{"messages": json.loads(p), "max_tokens": max(1, c), "temperature": 0.0,
                   "choices": json.loads(ch) if ch else None, "json_schema": json.loads(js) if js else None}
                  for p, c, ch, js in rows if p]
        random.Random(0).shuffle(bodies)  # the whole round's mix, not just its first phases
        reset_prefix_cache(chat.base_url)  # what the simulation left in the cache must not serve the plain side
        t_plain = time.perf_counter()
        plain_tps = asyncio.run(load_generator(chat.base_url, chat.spec.served_name, bodies, a.concurrency,
                                               max(20.0, min(sim_s, 60.0))))
        if a.trace:
            sampler.halt.set()
            for (t0, name), (t1, _) in zip(marks, marks[1:], strict=False):
                if name != "end":
                    print(f"{name:14s} {t1 - t0:7.1f}s {sampler.window(t0, t1)}", file=sys.stderr)
            print(f"{'plain':14s} {time.perf_counter() - t_plain:7.1f}s {sampler.window(t_plain, time.perf_counter())}",
                  file=sys.stderr)
            Path(a.trace).write_text(json.dumps({"marks": marks, "samples": sampler.samples}))
        if a.keep:
            shutil.copytree(tmp / "run", a.keep, dirs_exist_ok=True)
        print(json.dumps({"agents": summary["agents"], "llm_calls": summary["llm_calls"],
                          "sim_wall_s": round(sim_s, 2), "sim_gen_tok_s": round(sim_tps, 1),
                          "plain_gen_tok_s": round(plain_tps, 1), "ratio": round(sim_tps / plain_tps, 3),
                          "sim_prefix_cache_hit_rate": hit_rate, "sim_prefix_cache_queried_tokens": queries,
                          "kv_cache_gib": a.kv_cache_gib}))
    finally:
        chat.stop()
        emb.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
