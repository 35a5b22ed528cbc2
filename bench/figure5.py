"""GenSim's Figure 5, measured: the held-out exam against the number of SFT rows.

Trains one adapter per (rows, seed) on a correction loop's dataset (``data-1.jsonl`` of ``gensim
correct``, whose rows never include the held-out agents), then has the base model and the adapter sit
the paired held-out exam on the base run's recorded calls (no fork: the exam alone). Prints one line
per point and a JSON line; writes ``figure5.json`` and ``figure5.png`` (balanced accuracy of each
checked decision and the exam's failure share against rows, with 95% interval bars).

    .venv/bin/python bench/figure5.py --base BASE_RUN --data LOOP/data-1.jsonl --rows 50 200 800 --seeds 1
        [--objective choices] [--loop LOOP_DIR] [--out DIR]

(b), iterations in sequence: ``--iterations LOOP_DIR`` plots a ``gensim correct --iterations N`` folder's
exams (``iter-*/exam.json``, as many as it has finished) the same way, iteration on x, and writes
``figure5-iterations.json`` and ``figure5-iterations.png`` (nothing is trained).

Minutes per point on a 2-core CPU: training (rows / 8 steps, about 10-15 s each) and the exam
(about 10 minutes for 1,450 calls of both models).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.correction import exam as ex  # noqa: E402
from simulation.correction.loop import _serving, train  # noqa: E402  (train: in a child process)
from simulation.correction.measure import Groups, run_groups  # noqa: E402
from simulation.runner import read_run_config, recorded_scenario  # noqa: E402


def held_out_exam(base: Path, holdout: float = 0.5, control: float = 0.3,
                  choices_only: bool = False) -> tuple[int, Groups, list, list[ex.ExamItem]]:
    """The loop's held-out exam on ``base`` (the loop's groups: its data left the held-out agents out):
    the run's seed, the groups, job seeking's checks and the held-out agents' calls (``choices_only``:
    without the structured ones)."""
    seed, groups, checks = exam_setup(base, holdout, control)
    items = ex.exam_items(base, groups.holdout, checks)
    return seed, groups, checks, [i for i in items if i.choices or not choices_only]


def exam_setup(base: Path, holdout: float = 0.5, control: float = 0.3) -> tuple[int, Groups, list]:
    """The run's seed, the loop's groups and job seeking's checks: what grading needs, without the items."""
    groups, seed = run_groups(base, holdout, control)
    return seed, groups, recorded_scenario(base, read_run_config(base), "job_seeking")[0].checks


def sit(base: Path, items: list[ex.ExamItem], adapter: Path, name: str, seed: int) -> dict[str, list[str | None]]:
    """Both models' answers to the exam, the adapter deployed on the base run's endpoints."""
    with _serving(base, adapter, name, progress=False) as session:
        async def ask() -> dict[str, list[str | None]]:
            try:
                return await ex.ask_both(items, session.client, name, seed)
            finally:
                await session.client.aclose()

        return asyncio.run(ask())


def plot(points: list[dict], path: Path) -> None:
    """Figure 5 (a): each checked decision's balanced accuracy and the exam's failure share against rows,
    one marker per (rows, seed) with its 95% interval bar (seeds side by side), a line through the means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decisions = sorted({d for p in points for d in p["balanced_accuracy"]})
    seeds = sorted({str(p["seed"]) for p in points})
    fig, axes = plt.subplots(1, len(decisions) + 1, figsize=(4.2 * (len(decisions) + 1), 3.4))

    def panel(ax, value, base: float) -> None:
        got = [(p, value(p)) for p in points if value(p)]
        for k, s in enumerate(seeds):
            mine = [(p, v) for p, v in got if str(p["seed"]) == s]
            if mine:
                label = f"loop {s.removeprefix('loop:')}" if s.startswith("loop:") else f"seed {s}"
                ax.errorbar([p["rows"] * 1.06 ** k for p, _ in mine], [v[0] for _, v in mine], fmt="o", capsize=3,
                            color=f"C{k}", label=label,
                            yerr=[[v[0] - v[1] for _, v in mine], [v[2] - v[0] for _, v in mine]])
        rows = sorted({p["rows"] for p, _ in got})
        ax.plot(rows, [sum(v[0] for p, v in got if p["rows"] == r) / sum(p["rows"] == r for p, _ in got)
                       for r in rows], "-", color="black", lw=1, label="mean")
        ax.axhline(base, color="grey", ls="--", label="base model")

    for ax, d in zip(axes, decisions, strict=False):
        def ba(p, d=d):
            g = p["balanced_accuracy"].get(d)
            return (g[1], g[2], g[3]) if g else None
        panel(ax, ba, next(p["balanced_accuracy"][d][0] for p in points if p["balanced_accuracy"].get(d)))
        ax.axhline(0.75, color="green", ls=":", label="target 75%")
        ax.set(title=f"{d}: balanced accuracy", xlabel="SFT rows", xscale="log", ylim=(0.3, 1.0))
        ax.legend(fontsize=7)
    ax = axes[-1]
    panel(ax, lambda p: (p["adapter_fail"], p["fail_ci"][0], p["fail_ci"][1]), points[0]["base_fail"])
    ax.set(title="exam failure share", xlabel="SFT rows", xscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def iteration_points(loop: Path) -> list[dict]:
    """One point per finished iteration of a correction loop (its exam, re-scored from ``exam.jsonl`` by
    today's checks and figures), with its adoption where the loop's report has it."""
    report = loop / "correction.json"
    its = json.loads(report.read_text())["iterations"] if report.is_file() else []
    seed, groups, checks = exam_setup(loop / "base")  # the items come from each exam.jsonl
    points = []
    for k in range(1, 1000):
        exam = loop / f"iter-{k}" / "exam.jsonl"
        if not (exam.parent / "exam.json").is_file():  # written once the iteration's exam is complete
            break
        manifest = json.loads((loop / f"adapter-{k}" / "gensim_adapter.json").read_text())
        graded = ex.score_exam(exam, loop / "base", frozenset(groups.holdout), checks)
        p = point_of(ex.exam_figures(graded, seed=seed), k, manifest.get("seed", "loop"), int(manifest["samples"]),
                     manifest.get("train_s"), None)
        p["iteration"], p["learning_rate"] = k, manifest.get("learning_rate")
        p["adopted"] = its[k - 1]["adopted"] if k <= len(its) else None
        points.append(p)
    return points


def plot_iterations(points: list[dict], path: Path) -> None:
    """Figure 5 (b): each checked decision's balanced accuracy and the exam's failure share by iteration
    (0: the base model), with 95% interval bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decisions = sorted({d for p in points for d in p["balanced_accuracy"]})
    fig, axes = plt.subplots(1, len(decisions) + 1, figsize=(4.2 * (len(decisions) + 1), 3.4))
    xs = [0] + [p["iteration"] for p in points]
    for ax, d in zip(axes, decisions, strict=False):
        got = [p["balanced_accuracy"].get(d) for p in points]
        base = next(g[0] for g in got if g)
        ys = [base] + [g[1] if g else float("nan") for g in got]
        err = [[0] + [g[1] - g[2] if g else 0 for g in got], [0] + [g[3] - g[1] if g else 0 for g in got]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label="adapter (0: base model)")
        ax.axhline(0.75, color="green", ls=":", label="target 75%")
        ax.set(title=f"{d}: balanced accuracy", xlabel="correction iteration", xticks=xs, ylim=(0.0, 1.0))
        ax.legend(fontsize=7)
    ax = axes[-1]
    ys = [points[0]["base_fail"]] + [p["adapter_fail"] for p in points]
    ax.errorbar(xs, ys, fmt="o-", capsize=3, label="adapter (0: base model)",
                yerr=[[0] + [p["adapter_fail"] - p["fail_ci"][0] for p in points],
                      [0] + [p["fail_ci"][1] - p["adapter_fail"] for p in points]])
    for p in points:
        if p.get("adopted") is not None:
            ax.annotate("adopted" if p["adopted"] else "refused", (p["iteration"], p["adapter_fail"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=7)
    ax.set(title="exam failure share", xlabel="correction iteration", xticks=xs, ylim=(0.0, None))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def point_of(fig: dict, rows: int, seed: int | str, samples: int, train_s: float | None,
             exam_s: float | None) -> dict:
    """One point of the figure from an exam's figures (``exam.json``)."""
    f = fig["fail"]
    return {"rows": rows, "seed": seed, "samples": samples, "train_s": train_s, "exam_s": exam_s,
            "balanced_accuracy": {d: [b["base"], b["adapter"], b["lo"], b["hi"]]
                                  for d, b in fig["balanced_accuracy"].items() if b["lo"] is not None},
            "base_fail": f["base"], "adapter_fail": f["adapter"], "fail_ci": [f["lo"], f["hi"]],
            "cut": fig["cut"], "cut_ci": fig["cut_ci"],
            "shares": {d: v["adapter"] for d, v in fig["shares"].items()}}


def loop_point(loop: Path) -> dict:
    """The point of a ``gensim correct`` loop's first iteration (its adapter and its exam), so that the
    loop's own defaults sit on the figure without training them again."""
    manifest = json.loads((loop / "adapter-1" / "gensim_adapter.json").read_text())
    fig = json.loads((loop / "iter-1" / "exam.json").read_text())
    return point_of(fig, int(manifest["samples"]), f"loop:{loop.name}", int(manifest["samples"]),
                    manifest.get("train_s"), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=Path, help="(b): plot this gensim correct folder's iterations instead")
    ap.add_argument("--base", help="the loop's base run folder")
    ap.add_argument("--data", help="the loop's sft dataset (data-1.jsonl)")
    ap.add_argument("--rows", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    ap.add_argument("--seeds", type=int, default=1, help="training seeds per point")
    ap.add_argument("--objective", choices=["tokens", "choices"], default="choices")
    ap.add_argument("--holdout", type=float, default=0.5)
    ap.add_argument("--control", type=float, default=0.3)
    ap.add_argument("--loop", type=Path, action="append", default=[],
                    help="also plot this gensim correct folder's first iteration (same base and data)")
    ap.add_argument("--out", default="bench-figure5")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.iterations:
        points = iteration_points(a.iterations)
        if not points:
            raise SystemExit(f"error: {a.iterations}: no finished iteration (iter-1/exam.json)")
        for p in points:
            ba = ", ".join(f"{d} {v[0]:.0%}->{v[1]:.0%} [{v[2]:.0%}, {v[3]:.0%}]" for d, v in p["balanced_accuracy"].items())
            print(f"iteration {p['iteration']} (lr {p['learning_rate']:g}, {p['samples']} rows): {ba}; fail "
                  f"{p['base_fail']:.2f}->{p['adapter_fail']:.2f} [{p['fail_ci'][0]:.2f}, {p['fail_ci'][1]:.2f}]", flush=True)
        (out / "figure5-iterations.json").write_text(json.dumps({"loop": str(a.iterations), "points": points}, indent=2))
        plot_iterations(points, out / "figure5-iterations.png")
        print(json.dumps({"points": points}))
        return 0
    if not (a.base and a.data):
        raise SystemExit("error: --base and --data are needed (or --iterations LOOP)")
    base = Path(a.base)
    seed, groups, checks, items = held_out_exam(base, a.holdout, a.control)
    print(f"exam: {len(items)} calls of {len(groups.holdout)} held-out agents", flush=True)
    points: list[dict] = []
    done = out / "figure5.json"
    if done.is_file():  # resumable: points already measured are kept
        points = json.loads(done.read_text())["points"]
    for rows in a.rows:
        for s in range(1, a.seeds + 1):
            if any(p["rows"] == rows and p["seed"] == s for p in points):
                continue
            adapter = out / f"adapter-{rows}-{s}"
            t0 = time.perf_counter()
            m = train("sft", Path(a.data), adapter, epochs=1.0, seed=s, progress=False, max_samples=rows,
                      objective=a.objective)
            answers = sit(base, items, adapter, adapter.name, seed)
            graded = ex.grade_exam(base, items, answers, checks)
            ex.write_exam(out / f"exam-{rows}-{s}.jsonl", graded)
            fig = ex.exam_figures(graded, seed=seed)
            f = fig["fail"]
            point = point_of(fig, rows, s, m.samples, m.train_s, round(time.perf_counter() - t0 - m.train_s, 1))
            points.append(point)
            done.write_text(json.dumps({"base": str(base), "data": str(a.data), "objective": a.objective,
                                        "points": points}, indent=2))
            ba = ", ".join(f"{d} {v[0]:.0%}->{v[1]:.0%} [{v[2]:.0%}, {v[3]:.0%}]"
                           for d, v in point["balanced_accuracy"].items())
            print(f"rows {rows} seed {s}: {ba}; fail {f['base']:.2f}->{f['adapter']:.2f}; "
                  f"train {m.train_s:.0f}s, exam {point['exam_s']:.0f}s", flush=True)
    for loop in a.loop:
        got = loop_point(loop)
        points = [p for p in points if p["seed"] != got["seed"]] + [got]
        print(f"loop {loop}: {got['rows']} rows, fail {got['base_fail']:.2f}->{got['adapter_fail']:.2f}", flush=True)
    points.sort(key=lambda p: (p["rows"], str(p["seed"])))
    plot(points, out / "figure5.png")
    print(json.dumps({"points": points}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
