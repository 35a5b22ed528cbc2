"""Simulator overhead per LLM call and memory per agent, against an instant OpenAI-compatible stub.

    python bench/overhead.py --agents 10000 [--rounds 1] [--scenario job_seeking]

The stub runs in its own process; CPU is counted for the simulator process only. The last line
printed is JSON: agents, llm_calls, cpu_ms_per_llm_call, rss_kb_per_agent (and more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.runner import RunOptions, run_simulation  # noqa: E402
from simulation.testing.procs import start_stub, stub_models  # noqa: E402


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--scenario", default="job_seeking")
    a = ap.parse_args()
    stubs = [start_stub(), start_stub()]
    tmp = Path(tempfile.mkdtemp(prefix="gensim-bench-"))
    try:
        src = Path(__file__).resolve().parents[1] / "simulation" / "examples" / a.scenario
        folder = tmp / a.scenario
        shutil.copytree(src, folder, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "configs" / "model_configs.json").write_text(json.dumps(stub_models([stubs[0]], embed=stubs[1])))
        base_rss = rss_kb()
        peak = [base_rss]

        async def sample() -> None:
            while True:
                peak[0] = max(peak[0], rss_kb())
                await asyncio.sleep(0.2)

        async def go() -> dict:
            t = asyncio.ensure_future(sample())
            try:
                return await run_simulation(RunOptions(scenario=str(folder), agents=a.agents, rounds=a.rounds,
                                                       out=str(tmp / "run"), progress=False, overrides=["concurrency=512"]))
            finally:
                t.cancel()

        c0, w0 = time.process_time(), time.perf_counter()
        summary = asyncio.run(go())
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        peak[0] = max(peak[0], rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        calls = summary["llm_calls"]
        out = {"agents": summary["agents"], "rounds": summary["rounds"], "llm_calls": calls,
               "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
               "cpu_ms_per_llm_call": round(1000 * cpu / max(1, calls), 3),
               "rss_kb_per_agent": round((peak[0] - base_rss) / max(1, summary["agents"]), 2),
               "failed_steps": summary["failed_steps"]}
        print(json.dumps(out))
    finally:
        for s in stubs:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
