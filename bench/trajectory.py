"""How one training moved the adapter, snapshot by snapshot: for a correction loop trained with
``--save-every``, each snapshot of ``adapter-N`` (and the finished adapter, and optionally the average
of a stretch of snapshots' weights) is served alone and asked the exam's option probabilities on the
calls the exam weighed (a seeded sample of each decision's held-out calls, every order of their options
averaged: ``exam.order_probs``). Per point and targeted decision it prints

- ``acc``: balanced accuracy of the position-free pick (the likelier option once orders are averaged) on
  the calls a check names the right option for;
- ``drift``: total variation between the base's and the point's position-free picks on the calls no
  check grades (the guard's ungraded drift), and the point's mean probability of each option there;

and the same for the mean of the points' probabilities from ``--mean-from`` on (an ensemble, no server).
The finished adapter's are the exam's own (the same calls, orders and seed); ``--serve-final`` serves it
too and prints how far its probabilities are from the exam's: a check that these figures are the exam's.

    python bench/trajectory.py runs/correct-x                      # iteration 1, every snapshot
    python bench/trajectory.py runs/correct-x --average 100 200 --mean-from 100
    python bench/trajectory.py runs/correct-x --calls training     # the training agents' anchored calls

``--calls training`` asks the same of the training agents' calls no check grades (the anchored rows of
``data-N.jsonl``, what ``--pick anchors`` weighs): does their drift track the exam's?

About 2-3 minutes per point on the 2-core CPU (a merge, a server start, ~500 calls in 2-6 orders);
each point's probabilities are kept in ``iter-N/trajectory.json``, so a stopped run goes on where it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.correction import exam as ex  # noqa: E402
from simulation.correction.pick import anchor_calls, read_pick  # noqa: E402
from simulation.training.manifest import read_manifest, snapshot_step, snapshots, write_manifest  # noqa: E402

Probs = dict[str, float]


def fail(msg: str) -> int:
    print(f"trajectory: {msg}", file=sys.stderr)
    return 2


def average_adapter(folders: list[Path], out: Path) -> Path:
    """The mean of ``folders``' LoRA weights (each tensor averaged, as stochastic weight averaging
    does), written as an adapter with the last folder's config and manifest (``step`` None)."""
    from safetensors.torch import load_file, save_file

    tensors = [load_file(str(f / "adapter_model.safetensors")) for f in folders]
    mean = {k: sum(t[k] for t in tensors) / len(tensors) for k in tensors[0]}
    out.mkdir(parents=True, exist_ok=True)
    save_file(mean, str(out / "adapter_model.safetensors"))
    shutil.copy(folders[-1] / "adapter_config.json", out / "adapter_config.json")
    write_manifest(out, read_manifest(folders[-1], "adapter").model_copy(update={"step": None}))
    return out


def score(folder: Path, name: str, items: list[ex.ExamItem], run_cfg: Any, seed: int, work: Path) -> list[Probs | None]:
    """``folder`` merged into its base and served alone; its order-averaged option probabilities on
    ``items`` (the exam's orders: the same seed)."""
    from tqdm import tqdm

    from simulation.llm.scoring import VLLMOptionScorer
    from simulation.services.endpoints import kv_cache_env
    from simulation.services.vllm_server import chat_spec, log_dir, start_server
    from simulation.training import merge_adapter

    merged = merge_adapter(folder, work / "models" / name)
    spec = chat_spec(model=str(merged), served_name=name, extra_env=kv_cache_env(run_cfg.simulation),
                     log_file=str(log_dir() / f"trajectory_{name}_{os.getpid()}.log"))
    proc = start_server(spec, timeout=run_cfg.simulation.embedded.startup_timeout_s)
    try:
        scorer = VLLMOptionScorer(proc.base_url, name, timeout_s=run_cfg.simulation.llm.timeout_s)
        bar = tqdm(total=len(items), desc=name, unit="call", leave=False)

        async def go() -> list[Probs | None]:
            try:
                return await ex.order_probs(items, scorer, k=ex.ORDERS, seed=seed, on_done=bar.update)
            finally:
                await scorer.aclose()

        got = asyncio.run(go())
        bar.close()
        return got
    finally:
        proc.stop()
        shutil.rmtree(work / "models" / name, ignore_errors=True)


def figures(items: list[ex.ExamItem], right: list[str | None], base: list[Probs], point: list[Probs],
            rated: set[str]) -> dict[str, Any]:
    """Per decision: position-free balanced accuracy on its graded calls (where a check names a right
    option), and on its ungraded calls the drift from the base's position-free picks and the mean
    probabilities."""
    out: dict[str, Any] = {}
    for d in sorted({i.decision for i in items}):
        ks = [k for k, i in enumerate(items) if i.decision == d]
        row: dict[str, Any] = {"calls": len(ks)}
        rights = sorted({right[k] for k in ks if right[k]})
        if rights:
            per = {r: [ex.preferred_option(point[k]) == r for k in ks if right[k] == r] for r in rights}
            row["acc"] = round(sum(sum(v) / len(v) for v in per.values()) / len(per), 4)
            row["per_option"] = {r: round(sum(v) / len(v), 4) for r, v in per.items()}
        free = [k for k in ks if right[k] is None] if d in rated else ks
        if free:
            b = [ex.preferred_option(base[k]) for k in free]
            p = [ex.preferred_option(point[k]) for k in free]
            row["ungraded" if d in rated else "all"] = {
                "calls": len(free), "drift": ex.total_variation(ex._shares(b), ex._shares(p)),
                "base_mean": ex._mean_probs([base[k] for k in free]),
                "mean": ex._mean_probs([point[k] for k in free])}
        out[d] = row
    return out


def line(label: str, fig: dict[str, Any]) -> str:
    parts = []
    for d, v in fig.items():
        bits = []
        if "acc" in v:
            bits.append(f"acc {v['acc'] * 100:.0f}%")
        u = v.get("ungraded") or v.get("all")
        if u:
            top = max(u["base_mean"], key=u["base_mean"].get)
            bits.append(f"drift {u['drift']:.2f} ({top} {u['base_mean'][top]:.2f}->{u['mean'].get(top, 0):.2f})")
        parts.append(f"{d}: {', '.join(bits)}")
    return f"{label:>14}  " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("loop", type=Path, help="a gensim correct folder whose adapter was trained with --save-every")
    p.add_argument("--iteration", type=int, default=1, help="which iteration's adapter and exam (default 1)")
    p.add_argument("--base", type=Path, help="the base run (default: LOOP/base)")
    p.add_argument("--steps", type=int, nargs="+", metavar="STEP", help="only these snapshots (default: every one)")
    p.add_argument("--serve-final", action="store_true", help="serve the finished adapter too and compare its "
                   "probabilities with those the exam recorded (default: the exam's are used)")
    p.add_argument("--average", type=int, nargs=2, metavar=("FROM", "TO"), help="also serve the mean of the weights "
                   "of the snapshots (and the finished adapter) from step FROM to step TO")
    p.add_argument("--exam-from", type=Path, metavar="LOOP2", help="the exam of another loop on the same base run "
                   "and seed (its held-out calls and the base's probabilities; none of its adapter's): for a loop "
                   "whose own exam has not been sat")
    p.add_argument("--out", type=Path, help="where the points go (default: LOOP's iter-N/trajectory[-training].json)")
    p.add_argument("--calls", choices=("exam", "training"), default="exam",
                   help="whose calls: the exam's (held-out agents) or the training agents' anchored ones "
                   "(data-N.jsonl's rows no check grades: does drift on them track the exam's?)")
    p.add_argument("--mean-from", type=int, metavar="STEP", help="also report the mean of the points' probabilities "
                   "from this step on (no server)")
    args = p.parse_args(argv)
    loop, it = args.loop, args.iteration
    adapter = loop / f"adapter-{it}"
    examined = args.exam_from or loop
    fork = examined / f"iter-{it}"
    base = args.base or loop / "base"
    report = examined / "correction.json"
    for path, what in ((adapter, "the adapter"), (fork / "exam.jsonl", "the exam"), (report, "the loop's report"),
                       (base / "run.sqlite", "the base run (--base)")):
        if not path.exists():
            return fail(f"{path}: no such file or folder ({what})")
    snaps = snapshots(adapter)
    if not snaps:
        return fail(f"{adapter}: no snapshots (train with gensim correct ... --save-every N)")
    from simulation.correction.measure import run_groups
    from simulation.runner import read_run_config, recorded_scenario

    rep = json.loads(report.read_text())
    details = rep["details"][it - 1]
    scope = set(details.get("adapter_actions") or [])
    holdout = frozenset(rep["groups"]["holdout"])
    cfg = read_run_config(base)
    _, seed = run_groups(base, 0.5, 0.3)
    checks = recorded_scenario(base, cfg, None)[0].checks
    graded = ex.score_exam(fork / "exam.jsonl", base, holdout, checks)
    if not graded.base_probs:
        return fail(f"{fork / 'exam.jsonl'}: the exam has no option probabilities (the server gave none)")
    ks = [k for k, i in enumerate(graded.items) if graded.base_probs[k] and (not scope or i.decision in scope)]
    items = [graded.items[k] for k in ks]
    right = [graded.right[k] for k in ks]
    base_p = [graded.base_probs[k] for k in ks]
    rated = {i.decision for i, r in zip(graded.items, graded.right, strict=True) if r}
    on_training = args.calls == "training"
    if on_training:
        items, base_p = anchor_calls(loop / f"data-{it}.jsonl", frozenset(scope) or None)
        right = [None] * len(items)
    last = len(read_manifest(adapter, "adapter").losses)
    if args.steps:
        missing = sorted(set(args.steps) - {snapshot_step(s) for s in snaps} - {last})
        if missing:
            return fail(f"--steps: no snapshot of step {', '.join(map(str, missing))} in {adapter / 'snapshots'}")
        snaps = [s for s in snaps if snapshot_step(s) in args.steps]
    points = [(f"step-{snapshot_step(s)}", s) for s in snaps] + [(f"step-{last}", adapter)]
    if args.average:
        lo, hi = args.average
        chosen = [f for label, f in points if lo <= int(label[5:]) <= hi]
        if len(chosen) < 2:
            return fail(f"--average {lo} {hi}: {len(chosen)} snapshot(s) in that range, 2 or more needed")
        points.append((f"avg-{lo}-{hi}", average_adapter(chosen, adapter / f"averaged-{lo}-{hi}")))
    out = args.out or fork / ("trajectory-training.json" if on_training else "trajectory.json")
    kept = json.loads(out.read_text()) if out.is_file() else {}
    if kept.get("calls") != [i.call_id for i in items]:
        kept = {"calls": [i.call_id for i in items], "probs": {}}
    recorded = [graded.adapter_probs[k] for k in ks] if graded.adapter_probs else []
    picked = read_pick(loop / f"pick-{it}.json")  # --pick anchors: the exam asked the chosen step, not the last
    final_label = f"step-{picked.chosen.step if picked else last}"
    if recorded and all(recorded) and not on_training and args.exam_from is None:
        kept["probs"][final_label] = recorded  # the exam asked the finished adapter these very calls and orders
        if args.serve_final:
            points.append(("final-served", loop / picked.chosen.folder if picked else adapter))
    for label, folder in points:
        if label not in kept["probs"]:
            got = score(folder, label, items, cfg, seed, loop)
            if any(g is None for g in got):
                return fail(f"{label}: the server gave no probabilities for {sum(g is None for g in got)} calls")
            kept["probs"][label] = got
            out.write_text(json.dumps(kept))
    if "final-served" in kept["probs"]:
        served = kept["probs"]["final-served"]
        gap = max(abs(a.get(o, 0) - b.get(o, 0)) for a, b in zip(served, recorded, strict=True) for o in a)
        print(f"finished adapter against the exam's recorded probabilities: largest difference {gap:.4f}")
    print(f"{len(items)} exam calls ({', '.join(sorted(scope)) or 'every decision'}); base run {base}")
    figs = {"base": figures(items, right, base_p, base_p, rated)}
    print(line("base", figs["base"]))
    for label, _ in points:
        figs[label] = figures(items, right, base_p, kept["probs"][label], rated)
        print(line(label, figs[label]))
    if args.mean_from is not None:
        use = [label for label, _ in points if label.startswith("step-") and int(label[5:]) >= args.mean_from]
        mean = [{o: sum(kept["probs"][u][k][o] for u in use) / len(use) for o in base_p[k]} for k in range(len(items))]
        figs[f"mean-from-{args.mean_from}"] = figures(items, right, base_p, mean, rated)
        print(line(f"mean>={args.mean_from}", figs[f"mean-from-{args.mean_from}"]))
    kept["figures"] = figs
    out.write_text(json.dumps(kept))
    print(f"trajectory: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
