"""Simulator overhead per LLM call and memory per agent, against an instant OpenAI-compatible stub.

    python bench/overhead.py --agents 10000 [--rounds 1] [--scenario job_seeking]

The in-process runtime with one agent group: CPU and memory are the simulator process's alone (the
stub runs in its own processes). The last line printed is JSON: agents, llm_calls,
cpu_ms_per_llm_call, rss_kb_per_agent (and more). ``bench/scale.py`` measures the same on Ray.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import main as scale_main  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--scenario", default="job_seeking")
    a = ap.parse_args()
    scale_main(["--runtime", "local", "--servers", "1", "--agents", str(a.agents), "--rounds", str(a.rounds),
                "--scenario", a.scenario])
