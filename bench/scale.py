"""Scale: agent creation and round time, CPU per LLM call and memory per agent, local or on Ray.

    python bench/scale.py --runtime ray --servers 2 --agents 100000
    python bench/scale.py --runtime local --agents 10000
    python bench/scale.py --runtime ray --servers 2 --agents 1000000 --no-llm

Job seeking runs against an instant OpenAI-compatible stub on loopback; ``--no-llm`` runs the
gossip scenario (bench/scenarios/gossip), whose agents act without any model, to show the engine's
own ceiling. CPU and memory are summed over every process of the simulation (the driver, the agent
servers and, for Ray, its node processes), the stub excluded; memory is the peak of their summed
proportional set size (shared pages counted once), above what the driver held before the run. The last line is JSON: agents,
create_s (runtime up, agents created, environment set up), start_s (also the round-0 checkpoint),
round_s, llm_calls, cpu_ms_per_llm_call, rss_kb_per_agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.runner import RunOptions, run_simulation  # noqa: E402
from simulation.testing.procs import descendants, process_table, start_stub, stub_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _memory_kb(pid: int) -> int:
    """Proportional set size: shared pages (Ray's object store, libraries) split among the processes
    that map them, so that summing over processes counts each page once. RSS if PSS is unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except OSError:  # it exited since the process table was read
        return 0


def tree(root: int, exclude: set[int]) -> tuple[float, int, int]:
    """CPU seconds, memory KB and process count of ``root`` and its descendants, minus ``exclude`` subtrees."""
    table = process_table()
    pids = descendants(root, table, exclude)
    return sum(table[p][2] for p in pids), sum(_memory_kb(p) for p in pids), len(pids)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", choices=["local", "ray"], default="local")
    ap.add_argument("--servers", type=int, default=2, help="agent groups (Ray: agent servers)")
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-llm", action="store_true", help="the gossip scenario: agents act without any model")
    ap.add_argument("--scenario", default="job_seeking", help="a shipped scenario, run against the stub")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="gensim-scale-"))
    stubs = [] if a.no_llm else [start_stub(), start_stub()]
    me = os.getpid()
    try:
        if a.no_llm:
            folder = ROOT / "bench" / "scenarios" / "gossip"
        else:
            folder = tmp / a.scenario
            shutil.copytree(ROOT / "simulation" / "examples" / a.scenario, folder,
                            ignore=shutil.ignore_patterns("__pycache__"))
            (folder / "configs" / "model_configs.json").write_text(json.dumps(stub_models([stubs[0]], embed=stubs[1])))
        exclude = {s.pid for s in stubs}
        cpu0, rss0, _ = tree(me, exclude)
        peak = [0]
        marks: dict[str, float] = {}
        done = threading.Event()

        def sampler() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree(me, exclude)[1])
                done.wait(0.5)

        def before_round(sim, r) -> None:
            marks.setdefault("rounds_start", time.perf_counter())

        def after_round(sim, r) -> None:  # before the runtime shuts down: its processes still count
            marks["rounds_end"] = time.perf_counter()
            cpu, rss, n = tree(me, exclude)
            marks["cpu"], marks["procs"] = cpu, n
            peak[0] = max(peak[0], rss)

        threading.Thread(target=sampler, daemon=True).start()
        t0 = time.perf_counter()
        opts = RunOptions(scenario=str(folder), agents=a.agents, rounds=a.rounds, runtime=a.runtime,
                          out=str(tmp / "run"), progress=False,
                          overrides=[f"servers={a.servers}", "concurrency=512", "checkpoint_every=1000000"],
                          hooks={"before_round": [before_round], "after_round": [after_round]})
        summary = asyncio.run(run_simulation(opts))
        done.set()
        calls = summary.get("llm_calls", 0)
        cpu = marks["cpu"] - cpu0
        out = {"runtime": a.runtime, "servers": a.servers, "agents": summary["agents"], "rounds": summary["rounds"],
               "create_s": summary["setup_s"], "start_s": round(marks["rounds_start"] - t0, 2),
               "round_s": round((marks["rounds_end"] - marks["rounds_start"]) / max(1, summary["rounds"]), 2),
               "llm_calls": calls, "processes": marks["procs"], "cpu_s": round(cpu, 2),
               "cpu_ms_per_llm_call": round(1000 * cpu / calls, 3) if calls else None,
               "cpu_us_per_agent_round": round(1e6 * cpu / (summary["agents"] * max(1, summary["rounds"])), 2),
               "rss_kb_per_agent": round((peak[0] - rss0) / max(1, summary["agents"]), 2),
               "failed_steps": summary["failed_steps"]}
        print(json.dumps(out))
    finally:
        for s in stubs:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
