"""GenSim's Figure 5, measured with the paired held-out exam: (a) balanced accuracy and failure share
against the number of SFT rows, (b) three correction iterations in sequence.

    python bench/correction_rows.py                                  # 120 agents, rows 50..800, seeds 1 2
    python bench/correction_rows.py --agents 60 --rows 50 200 --seeds 1 --iterations 2 --out /tmp/fig5
    python bench/correction_rows.py --fake --agents 24 --rows 8 --seeds 1 --iterations 1   # smoke (fake model)

Per seed, one base run (job seeking, shuffled options, ``--rounds`` rounds) is shared by every point:
each point is ``gensim correct --base BASE --iterations 1 --max-samples ROWS``, and the sequence is
``--iterations N`` at ``--sequence-rows``. Each point's figures come from the fork's ``exam.json``
(balanced accuracy per decision, failure share, both with paired bootstrap 95% intervals over
held-out agents). Writes ``fig5_rows.png``, ``fig5_iterations.png`` and ``fig5.json`` to ``--out`` and
prints one JSON line. Hours on 2 CPU cores at the defaults; not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.correction.loop import CorrectOptions, correct  # noqa: E402
from simulation.runner import RunOptions, run_simulation  # noqa: E402


def point(fork: Path) -> dict[str, Any]:
    """The exam's figures of one fork, as the plots read them."""
    fig = json.loads((fork / "exam.json").read_text())
    return {"n": fig["n"], "fail": fig["fail"], "cut": fig["cut"], "cut_ci": fig["cut_ci"],
            "balanced_accuracy": {d: {k: v[k] for k in ("base", "adapter", "lo", "hi", "diff_lo", "diff_hi", "n")}
                                  for d, v in fig["balanced_accuracy"].items()}}


def measure(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    over = ["llm.shuffle_options=true", *(["llm.backend=fake"] if a.fake else [])]
    res: dict[str, Any] = {"rows": {}, "iterations": {}, "agents": a.agents, "rounds": a.rounds}
    for seed in a.seeds:
        base = out / f"seed{seed}" / "base"
        if not (base / "run.sqlite").is_file():
            asyncio.run(run_simulation(RunOptions(scenario="job_seeking", agents=a.agents, rounds=a.rounds, seed=seed,
                                                  overrides=over, out=str(base), progress=False)))
        common = dict(base=str(base), epochs=a.epochs, progress=False, max_drift=a.max_drift)
        for rows in a.rows:
            loop = out / f"seed{seed}" / f"rows{rows}"
            if not (loop / "correction.json").is_file():
                correct(CorrectOptions("job_seeking", iterations=1, max_samples=rows, out=str(loop), **common))
            res["rows"].setdefault(str(rows), {})[str(seed)] = point(loop / "iter-1")
            print(f"seed {seed} rows {rows}: {json.dumps(res['rows'][str(rows)][str(seed)])}", flush=True)
        if a.iterations:
            loop = out / f"seed{seed}" / "sequence"
            if not (loop / "correction.json").is_file():
                correct(CorrectOptions("job_seeking", iterations=a.iterations, max_samples=a.sequence_rows,
                                       out=str(loop), **common))
            res["iterations"][str(seed)] = [point(loop / f"iter-{i}") for i in range(1, a.iterations + 1)]
            print(f"seed {seed} sequence: {json.dumps(res['iterations'][str(seed)])}", flush=True)
    return res


def _bar(ax: Any, x: float, fig: dict[str, Any], key: str, color: str, label: str | None) -> None:
    v = fig.get(key)
    if v is None:
        return
    err = [[v - fig["lo"]], [fig["hi"] - v]] if key == "adapter" and fig.get("lo") is not None else None
    ax.errorbar([x], [v], yerr=err, fmt="o" if key == "adapter" else "_", color=color, capsize=3, label=label)


def plot(res: dict[str, Any], out: Path) -> list[Path]:
    """Two PNGs: the figures against SFT rows (one marker per seed, its 95% interval as a bar, the base
    model as a dash), and over the iterations of the sequence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    written = []
    series = [("rows", sorted(res["rows"], key=int), "SFT rows (log scale)"),
              ("iterations", None, "correction iteration")]
    for kind, xs, xlabel in series:
        fig, (acc, fail) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
        seen: set[str] = set()
        if kind == "rows":
            points = [(int(x), seed, p) for x in xs for seed, p in res["rows"][x].items()]
        else:
            points = [(i + 1, seed, p) for seed, ps in res["iterations"].items() for i, p in enumerate(ps)]
        for x, seed, p in points:
            jitter = 1 + 0.04 * (int(seed) - 1) if kind == "rows" else 0.08 * (int(seed) - 1)
            xx = x * jitter if kind == "rows" else x + jitter
            for k, (d, b) in enumerate(sorted(p["balanced_accuracy"].items())):
                label = None if d in seen else d
                seen.add(d)
                _bar(acc, xx, b, "adapter", colors[k % len(colors)], label)
                _bar(acc, xx, b, "base", colors[k % len(colors)], None)
            f = p["fail"]
            _bar(fail, xx, f, "adapter", "black", None if "fail" in seen else "adapter")
            _bar(fail, xx, f, "base", "gray", None if "fail" in seen else "base model")
            seen.add("fail")
        if kind == "rows":
            for ax in (acc, fail):
                ax.set_xscale("log", base=2)
        acc.set_ylim(0, 1.05)
        acc.axhline(0.5, color="gray", lw=0.6, ls=":")
        acc.set_ylabel("held-out balanced accuracy (exam)")
        fail.set_ylabel("held-out failure share (exam)")
        fail.set_ylim(bottom=0)
        for ax in (acc, fail):
            ax.set_xlabel(xlabel)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
        fig.suptitle(f"GenSim correction, job seeking, {res['agents']} agents x {res['rounds']} rounds "
                     "(dash: base model; bar: 95% interval)", fontsize=9)
        fig.tight_layout()
        path = out / f"fig5_{kind}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iterations", type=int, default=3, help="the sequence's iterations (0: none)")
    ap.add_argument("--sequence-rows", type=int, default=400)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-drift", type=float, default=0.15)
    ap.add_argument("--fake", action="store_true", help="the in-process fake model (a smoke test of the bench)")
    ap.add_argument("--out", help="keep everything here; a re-run skips finished points (default: a temporary folder)")
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="gensim-fig5-"))
    out.mkdir(parents=True, exist_ok=True)
    res = measure(a, out)
    (out / "fig5.json").write_text(json.dumps(res, indent=2))
    paths = plot(res, out)
    print(f"figures: {', '.join(str(p) for p in paths)}")
    print(json.dumps({"out": str(out), **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
