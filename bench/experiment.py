"""Experiments on the real CPU server: (1) the same 8 runs at ``--parallel 1`` and ``--parallel 4`` in one
invocation, with the ratio of their wall times and the forecast's error; (2) GenSim's Figure 3
analogue: wall time per round against the number of agents, with a linear fit and its R^2.

    python bench/experiment.py parallel                     # job seeking, 40 agents, 2 rounds, 8 runs
    python bench/experiment.py scaling --agents 20 40 80 160 320 --seeds 2 --rounds 2
    python bench/experiment.py servers --agents 40 --seeds 2   # 1 and 2 embedded chat servers
    python bench/experiment.py parallel --fake --agents 12    # smoke (fake model, no servers)

Each part is ``gensim experiment`` (the embedded servers start once per experiment and every run uses
them); figures print as one JSON line, and ``scaling`` writes ``fig3_scaling.png`` to ``--out``.
Tens of minutes on 2 CPU cores; not part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from simulation.experiments import ExperimentDesign, run_experiment  # noqa: E402
from simulation.experiments.run import forecast  # noqa: E402


def parallel(args: argparse.Namespace, out: Path) -> dict:
    """8 runs (4 seeds x 2 cells of one setting that changes nothing the runs cost) at P=1 and P=4."""
    got = {}
    for p in (1, args.parallel):
        design = ExperimentDesign(scenario=args.scenario, seeds=list(range(1, args.runs // 2 + 1)),
                                  grid={"llm.max_repairs": ["1", "2"]}, agents=args.agents, rounds=args.rounds,
                                  llm="fake" if args.fake else None)
        folder = out / f"parallel-{p}"
        fc = forecast(design, folder, parallel=p)
        t0 = time.perf_counter()
        run_experiment(design, folder, parallel=p)
        wall = time.perf_counter() - t0
        err = json.loads((folder / "experiment.json").read_text())["forecast_vs_actual"]
        got[p] = {"wall_s": round(wall, 1), "forecast": fc, "forecast_vs_actual": err}
    return {"runs": args.runs, "agents": args.agents, "rounds": args.rounds, "by_parallel": got,
            "speedup": round(got[1]["wall_s"] / got[args.parallel]["wall_s"], 2)}


def scaling(args: argparse.Namespace, out: Path) -> dict:
    """Wall time per round against agents (one cell per population size, ``--seeds`` each)."""
    design = ExperimentDesign(scenario=args.scenario, seeds=list(range(1, args.seeds + 1)),
                              grid={"agents": [str(a) for a in args.agents]}, rounds=args.rounds,
                              llm="fake" if args.fake else None)
    results = run_experiment(design, out / "scaling", parallel=1)
    wall = results[results["metric"] == "cost.wall_s"]
    per = wall.groupby(["agents", "seed"])["value"].mean().reset_index()  # mean round time of each run
    x = per["agents"].astype(int).to_numpy(dtype=float)
    y = per["value"].to_numpy(dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.scatter(x, y, label="runs (mean round time)")
    xs = np.linspace(0, x.max() * 1.05, 50)
    ax.plot(xs, slope * xs + intercept, color="C1", label=f"fit: {slope:.3f} s/agent {intercept:+.1f} s, "
                                                          f"R²={r2:.3f}")
    ax.set_xlabel("agents")
    ax.set_ylabel("wall time per round (s)")
    ax.set_title(f"{args.scenario}, {args.rounds} rounds, CPU vLLM ({'fake model' if args.fake else 'SmolLM2-135M'})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = out / "fig3_scaling.png"
    fig.savefig(png, dpi=110)
    return {"agents": [int(a) for a in args.agents], "seeds": args.seeds, "rounds": args.rounds,
            "round_s": {str(int(a)): round(float(v), 2) for a, v in per.groupby("agents")["value"].mean().items()},
            "slope_s_per_agent": round(float(slope), 4), "intercept_s": round(float(intercept), 2),
            "r2": round(float(r2), 4), "png": str(png)}


def servers(args: argparse.Namespace, out: Path) -> dict:
    """Wall time per round with 1 and 2 embedded chat servers (each run starts its own)."""
    design = ExperimentDesign(scenario=args.scenario, seeds=list(range(1, args.seeds + 1)),
                              grid={"embedded.chat_servers": ["1", "2"]}, agents=(args.agents or [40])[0],
                              rounds=args.rounds, llm="fake" if args.fake else None)
    results = run_experiment(design, out / "servers", parallel=1)
    wall = results[results["metric"] == "cost.wall_s"]
    per = wall.groupby(["embedded.chat_servers", "seed"])["value"].mean().groupby(level=0).mean()
    return {"agents": design.agents, "rounds": args.rounds, "seeds": args.seeds,
            "round_s_by_chat_servers": {k: round(float(v), 2) for k, v in per.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["parallel", "scaling", "servers"])
    ap.add_argument("--scenario", default="job_seeking")
    ap.add_argument("--agents", type=int, nargs="+", default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=8, help="parallel: runs per setting of --parallel")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2, help="scaling: seeds per population size")
    ap.add_argument("--fake", action="store_true", help="the fake model (a smoke test of the bench)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gensim-experiment-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.part == "parallel":
        args.agents = (args.agents or [40])[0]
        res = parallel(args, out)
    elif args.part == "servers":
        res = servers(args, out)
    else:
        args.agents = args.agents or [20, 40, 80, 160, 320]
        res = scaling(args, out)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
