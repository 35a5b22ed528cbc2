"""Judge a recorded correction loop again with today's guard, offline: no training, no serving.

When a refusal rule changes, the loops already run say what it would have decided: for each
iteration with a fork and an exam (``iter-N/exam.json``), the held-out treated agents' live measures
and the recorded exam go through :func:`simulation.correction.loop.judged`, as the loop itself judges
them, and the reasons then and now are printed side by side. The loop's options come from its
``loop.json`` (``gensim correct`` writes it; a loop without one gives ``--holdout``, ``--control`` and
``--max-drift`` here).

    python bench/rejudge.py LOOP [LOOP ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rejudge(loop_dir: Path, holdout: float = 0.5, control: float = 0.3, max_drift: float = 0.15) -> list[dict]:
    """Per iteration with an exam: the reasons recorded then, the reasons now, adopted then and now."""
    from simulation.correction import loop
    from simulation.correction.measure import measure, run_groups
    from simulation.runner import read_run_config, recorded_scenario

    if (loop_dir / loop.LOOP_FILE).is_file():
        opts = loop.resume_options(loop_dir, progress=False)
        holdout, control, max_drift, base, scenario = opts.holdout, opts.control, opts.max_drift, opts.base, opts.scenario
    else:
        base, scenario = None, None
    base_dir = Path(base) if base else loop_dir / "base"
    report = json.loads((loop_dir / "correction.json").read_text(encoding="utf-8"))
    groups, _ = run_groups(base_dir, holdout, control)
    checks = recorded_scenario(base_dir, read_run_config(base_dir), scenario)[0].checks
    base_hold = measure(base_dir, groups.holdout_treated)
    out = []
    for i, it in enumerate(report["details"], start=1):
        fork, data = loop_dir / f"iter-{i}", loop_dir / f"data-{i}.jsonl"
        if not (fork / "exam.json").is_file() or not data.is_file():
            continue
        fig = json.loads((fork / "exam.json").read_text(encoding="utf-8"))
        scope = it.get("adapter_actions")
        now = loop.judged(fork, measure(fork, groups.holdout_treated), base_hold, fig, groups.holdout_treated, checks,
                          loop._targeted(data), frozenset(scope) if scope is not None else None, max_drift)
        out.append({"iteration": i, "then": it["refused_because"], "now": now, "adopted_then": it["adopted"],
                    "adopted_now": not now})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("loops", nargs="+", type=Path, metavar="LOOP", help="gensim correct folders")
    ap.add_argument("--holdout", type=float, default=0.5, help="for a loop without loop.json (default 0.5)")
    ap.add_argument("--control", type=float, default=0.3, help="for a loop without loop.json (default 0.3)")
    ap.add_argument("--max-drift", type=float, default=0.15, help="for a loop without loop.json (default 0.15)")
    ap.add_argument("--json", action="store_true", help="one JSON line per loop instead of text")
    args = ap.parse_args()
    for d in args.loops:
        if not (d / "correction.json").is_file():
            print(f"error: {d}: no correction.json (not a loop folder, or it measured no iteration)", file=sys.stderr)
            return 2
        got = rejudge(d, args.holdout, args.control, args.max_drift)
        if args.json:
            print(json.dumps({"loop": str(d), "iterations": got}))
            continue
        for g in got:
            print(f"{d} iteration {g['iteration']}: adopted then {g['adopted_then']}, now {g['adopted_now']}")
            for label in ("then", "now"):
                for r in g[label] or ["(none)"]:
                    print(f"  {label:<4} {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
