"""A fast sweep of the choice loss's settings, on a GPU when one is lent: train, sit a proxy exam, grade.

The real exam (``gensim correct``, ``bench/figure5.py``) asks a vLLM server, which this sweep cannot
carry to a GPU machine; here the held-out exam's answers are the constrained decoder's pick
computed with transformers (the option whose token path the model prefers once the options' tokens
are renormalised, ``training.choice.option_logprobs``), for the base model and for one adapter per
variant. The grading is the real one (``correction.exam``'s checks, balanced accuracy and
bootstrap intervals over agents). Three steps, the middle one where the accelerator is:

    .venv/bin/python bench/choice_sweep.py prep --loop LOOP --out DIR      # the exam's prompts, the data
    python bench/choice_sweep.py run --dir DIR --model HF_DIR --out ANSWERS [--budget-s 420] [VARIANT ...]   # bench/gpu/sweep.sh
    .venv/bin/python bench/choice_sweep.py grade --loop LOOP --dir DIR --answers ANSWERS
    .venv/bin/python bench/choice_sweep.py validate --loop LOOP --dir DIR   # the proxy against a loop's real exam

``run`` needs torch, transformers and peft (and this repository's ``simulation`` package importable);
it trains the variants in the order given until ``--budget-s`` is spent, writing each one's answers
as soon as it has them. A variant is a name from ``VARIANTS``. On a CPU, ``--decision screen`` sits
only the screening calls (213 on run H's exam: about 4 minutes a model on 2 cores, against about 25
for the whole exam), and the ``scr-only*`` variants train on screening's rated calls alone (358 rows,
about 15 minutes an epoch); the base model's answers are kept in ``ANSWERS`` and reused by a later
``run`` on the same calls and model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Variant:
    """One training setting: the answer weights' power (1: each right answer of a decision weighs
    alike, today's default; 0: no weights), per decision where given, which rows are left out, and the
    optimiser's settings."""

    power: float = 1.0
    drop_unsure: bool = False  # leave out rated calls no check names a right option for (meta.anchored)
    # per decision (action name): its own power, and whether its unsure calls are left out
    decision_power: tuple[tuple[str, float], ...] = ()
    drop_unsure_for: tuple[str, ...] = ()
    only: tuple[str, ...] = ()  # train on these decisions' rows alone (all decisions when empty)
    keep_rated: tuple[str, ...] = ()  # these decisions' rated rows are all trained, outside the even spread
    lr: float = 1e-3
    epochs: float = 1.0
    rows: int | None = 1000
    seed: int = 11
    # anchors' targets (the base's order-averaged probabilities) raised to this power and renormalised: 1 is the
    # loop's distillation; above 1 moves each call's target toward the base's own pick, with a margin that a
    # near-tied call (search_decision: 0.54 "search" on average) keeps against spill-over (runs X, Y)
    sharpen: float = 1.0


# job seeking's decisions whose checks name a right option (with scenario.state_fit: runs V-X)
_CHECKED = ("apply_posting", "screen", "offer_decision", "respond_offers")

VARIANTS: dict[str, Variant] = {
    "default": Variant(),
    "w0.5": Variant(power=0.5),
    "w0": Variant(power=0.0),
    "default-sure": Variant(drop_unsure=True),
    "w0.5-sure": Variant(power=0.5, drop_unsure=True),
    "default-s2": Variant(seed=2),
    "w0.5-s2": Variant(power=0.5, seed=2),
    "lr5e-4": Variant(lr=5e-4),
    "ep2": Variant(epochs=2.0),
    "all-rows": Variant(rows=None),
    "w0.5-ep2": Variant(power=0.5, epochs=2.0),
    "w0-ep2": Variant(power=0.0, epochs=2.0),
    "w0.5-all": Variant(power=0.5, rows=None),
    # per decision (the 2026-12-04 sweep: screening learnable without its unsure calls; offers never told
    # apart, so their answers unweighted), three training seeds each
    **{f"scr-sure{s}": Variant(drop_unsure_for=("screen",), seed=n) for s, n in (("", 11), ("-s2", 2), ("-s3", 3))},
    **{f"scr-sure-off-w0{s}": Variant(drop_unsure_for=("screen",), decision_power=(("offer_decision", 0.0),), seed=n)
       for s, n in (("", 11), ("-s2", 2), ("-s3", 3))},
    **{f"w0.5-ep2{s}": Variant(power=0.5, epochs=2.0, seed=n) for s, n in (("-s2", 2), ("-s3", 3))},
    **{f"default-sure{s}": Variant(drop_unsure=True, seed=n) for s, n in (("-s2", 2), ("-s3", 3))},
    # can the model learn screening at all when it is the only thing trained (its rated calls, every one)?
    # Small enough for a CPU: about 45 steps an epoch (2026-12-05)
    **{f"scr-only{e}{s}": Variant(only=("screen",), drop_unsure_for=("screen",), rows=None, epochs=ep, seed=n)
       for e, ep in (("", 1.0), ("-ep2", 2.0)) for s, n in (("", 11), ("-s2", 2), ("-s3", 3))},
    # the loop's mix, but the checked decisions' rated rows all kept (358 screenings, 242 offers on run H's data,
    # against 143 each when 1,000 rows are spread evenly) and their unsure calls left out
    # the same question for offers: their 242 rated rows alone (long prompts: about 25 minutes a seed on a CPU)
    **{f"off-only{s}": Variant(only=("offer_decision",), drop_unsure_for=("offer_decision",), rows=None, seed=n)
       for s, n in (("", 11), ("-s2", 2), ("-s3", 3))},
    # can the model part applications by the stated fit when they are the only thing trained? (run W's rows:
    # separable by the words alone, yet its adapter skipped every posting; about 5 minutes a seed on a CPU)
    **{f"app-only{e}{s}": Variant(only=("apply_posting",), drop_unsure_for=("apply_posting",), rows=None, epochs=ep,
                                  seed=n) for e, ep in (("", 1.0), ("-ep2", 2.0)) for s, n in (("", 11), ("-s2", 2))},
    # the same rows with the offer responses' beside them (their "decline all" lesson, runs M, N)
    "app+resp": Variant(only=("apply_posting", "respond_offers"), drop_unsure_for=("apply_posting", "respond_offers"),
                        rows=None),
    # run X's mix (every rated row of the four checked decisions kept, 1,600 rows: about 135 per unchecked decision)
    # and the same with a floor of about 200 rows per unchecked decision (X drifted 0.30 on search_decision); sit
    # them with --decision search_decision
    **{f"x-mix{k}": Variant(keep_rated=_CHECKED, drop_unsure_for=_CHECKED, rows=n, seed=42)
       for k, n in (("", 1600), ("-floor200", 1800))},
    # X's mix under another training seed (X and Y, 200 rows apart, differed by 13-27 points on screening and
    # offers: is that the rows or the seed?), and with sharpened anchors (near-tied search_decision flipped both
    # ways: 0.30 in X, 0.20 in Y, while its mean probabilities moved 0.09 and 0.02)
    "x-mix-s43": Variant(keep_rated=_CHECKED, drop_unsure_for=_CHECKED, rows=1600, seed=43),
    **{f"x-mix-sharp{k}": Variant(keep_rated=_CHECKED, drop_unsure_for=_CHECKED, rows=1600, seed=42, sharpen=k)
       for k in (2, 4)},
    **{f"keep-rated{s}": Variant(keep_rated=("screen", "offer_decision"), drop_unsure_for=("screen", "offer_decision"),
                                 seed=n) for s, n in (("", 11), ("-s2", 2), ("-s3", 3))},
}


def left_out(v: Variant, meta: dict, action: str) -> bool:
    """Whether ``v`` leaves this row out: a decision it does not train, or an unsure call (anchored) of
    a decision it drops them for."""
    if v.only and action not in v.only:
        return True
    return bool(meta.get("anchored")) and (v.drop_unsure or action in v.drop_unsure_for)


def pick_rows(examples: list, metas: list[dict], v: Variant) -> list:
    """The rows ``v`` trains, chosen as the loop's training chooses them (``spread_sample``): those it
    keeps, ``v.rows`` of them spread over actions after the rated rows of the decisions in
    ``v.keep_rated`` (marked ``keep``; whole up to ``training.KEPT_SHARE`` of ``v.rows``), in the file's
    order; anchors' targets sharpened by ``v.sharpen``."""
    from dataclasses import replace

    from simulation.training import spread_sample
    from simulation.training.choice import sharpened

    pool = [replace(e, keep=e.action in v.keep_rated and not m.get("anchored"), target=sharpened(e.target, v.sharpen))
            for e, m in zip(examples, metas, strict=True) if not left_out(v, m, e.action)]
    return pool if v.rows is None or len(pool) <= v.rows else spread_sample(pool, v.rows, v.seed)


def row_weights(rows: list, v: Variant) -> list[float]:
    """The rows' loss weights under ``v``: the loop's answer weights raised to the decision's power."""
    from simulation.training.choice import answer_weights

    powers = dict(v.decision_power)
    return [w ** powers.get(e.action, v.power) for e, w in zip(rows, answer_weights(rows), strict=True)]


def prep(loop: Path, out: Path) -> None:
    """The held-out exam's prompts (the loop's groups, as ``bench/figure5.py`` finds them) and its data."""
    from bench.figure5 import held_out_exam

    _, groups, _, items = held_out_exam(loop / "base", choices_only=True)  # it scores options
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "exam_prompts.jsonl", "w", encoding="utf-8") as f:
        for i in items:
            f.write(json.dumps({"call_id": i.call_id, "decision": i.decision, "messages": i.messages,
                                "choices": i.choices}) + "\n")
    shutil.copy(loop / "data-1.jsonl", out / "data.jsonl")
    print(f"prep: {len(items)} exam calls of {len(groups.holdout)} held-out agents; data "
          f"{sum(1 for _ in open(out / 'data.jsonl'))} rows -> {out}")


def _answers(model, tok, prompts: list[dict], dev: str, batch: int = 32) -> tuple[list[str], list[dict], list[float]]:
    """Per exam call: the constrained decoder's pick, its option probabilities, and the options'
    share of the whole vocabulary's probability (how much of the mass guided decoding could follow
    to other spellings)."""
    import torch

    from simulation.training.choice import choice_row, path_logprobs
    from simulation.training.data import Example

    picks, probs, mass = [], [], []
    model.eval()
    with torch.no_grad():
        for k in range(0, len(prompts), batch):
            part = prompts[k:k + batch]
            rows = [choice_row(tok, Example(p["messages"], p["choices"][0], None, "", tuple(p["choices"])))
                    for p in part]
            for p, (c, f) in zip(part, path_logprobs(model, rows, tok.pad_token_id, dev), strict=True):
                pr = c.exp().tolist()
                picks.append(p["choices"][max(range(len(pr)), key=pr.__getitem__)])
                probs.append({o: round(x, 4) for o, x in zip(p["choices"], pr, strict=True)})
                mass.append(float(f.exp().sum()))
    return picks, probs, mass


def run(folder: Path, model_dir: str, out: Path, names: list[str], budget_s: float,
        decisions: list[str] | None = None) -> None:
    """Train each variant and answer the exam with it (the base model first, unless ``out`` holds its
    answers to the same calls), within the budget; ``decisions``: sit only those decisions' calls."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from simulation.training.choice import train_choices
    from simulation.training.data import load_examples
    from simulation.training.trainers import tokenizer_for

    t_start = time.perf_counter()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    prompts = [json.loads(line) for line in open(folder / "exam_prompts.jsonl", encoding="utf-8")]
    if decisions:
        if any("decision" not in p for p in prompts):
            raise SystemExit(f"{folder}: its exam prompts name no decisions; run prep again to sit some of them")
        unknown = sorted(set(decisions) - {p["decision"] for p in prompts})
        if unknown:
            raise SystemExit(f"--decision {', '.join(unknown)}: the exam has no such decision (it has "
                             f"{', '.join(sorted({p['decision'] for p in prompts}))})")
        prompts = [p for p in prompts if p["decision"] in decisions]
    ids = [p["call_id"] for p in prompts]
    out.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    examples = load_examples(data, "sft")
    metas = [json.loads(line).get("meta", {}) for line in open(data, encoding="utf-8") if line.strip()]
    tok = tokenizer_for(model_dir)
    t0 = time.perf_counter()
    had = out / "answers-base.json"
    if had.exists() and {k: json.loads(had.read_text()).get(k) for k in ("call_ids", "model")} == {
            "call_ids": ids, "model": model_dir}:
        print(f"base: its answers to these {len(ids)} calls are in {had}", flush=True)
    else:
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev)
        got = _answers(base, tok, prompts, dev)
        _write(had, "base", Variant(), got, time.perf_counter() - t0, None, ids, model_dir)
        print(f"base: {len(prompts)} calls in {time.perf_counter() - t0:.0f}s on {dev}", flush=True)
        del base
    for name in names:
        if time.perf_counter() - t_start > budget_s:
            print(f"budget spent: {name} and later not run", flush=True)
            break
        v = VARIANTS[name]
        rows = pick_rows(examples, metas, v)
        weights = row_weights(rows, v)
        adapter = Path(f"/tmp/choice-sweep/{name}")
        shutil.rmtree(adapter, ignore_errors=True)
        adapter.mkdir(parents=True)
        t0 = time.perf_counter()
        losses = train_choices(rows, model_dir, None, adapter, v.epochs, 16, v.lr, 8, v.seed, False, weights=weights)
        train_s = time.perf_counter() - t0
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                                          str(adapter)).to(dev)
        got = _answers(model, tok, prompts, dev)
        _write(out / f"answers-{name}.json", name, v, got, train_s, losses, ids, model_dir)
        print(f"{name}: {len(rows)} rows, {len(losses)} steps in {train_s:.0f}s, loss {losses[0]:.3f}->"
              f"{sum(losses[-10:]) / min(10, len(losses)):.3f}; exam in {time.perf_counter() - t0 - train_s:.0f}s",
              flush=True)
        del model


def _write(path: Path, name: str, v: Variant, got: tuple, seconds: float, losses: list[float] | None,
           ids: list[int], model_dir: str) -> None:
    picks, probs, mass = got
    path.write_text(json.dumps({"variant": name, "settings": v.__dict__, "seconds": round(seconds, 1),
                                "call_ids": ids, "model": model_dir,
                                "losses": losses, "answers": picks, "probs": probs,
                                "mass": [round(m, 5) for m in mass]}))


def grade(loop: Path, folder: Path, answers: Path) -> None:
    """Each variant's exam, graded like the loop's (the base model's proxy answers as the base)."""
    from bench.figure5 import held_out_exam
    from simulation.correction import exam as ex

    base = loop / "base"
    seed, _, checks, items = held_out_exam(base, choices_only=True)
    order = [json.loads(line)["call_id"] for line in open(folder / "exam_prompts.jsonl", encoding="utf-8")]
    if order != [i.call_id for i in items]:
        raise SystemExit(f"{folder}: the exam's calls differ from {base}'s held-out calls")
    got = {p.stem.removeprefix("answers-"): json.loads(p.read_text()) for p in sorted(answers.glob("answers-*.json"))}
    b = got.pop("base")
    # answers sat on some decisions' calls only (run --decision) are graded on those calls
    ids = b.get("call_ids", order)
    for name, g in got.items():
        if g.get("call_ids", order) != ids:
            raise SystemExit(f"{answers}: answers-{name}.json answers other calls than answers-base.json")
    where = set(ids)
    items = [i for i in items if i.call_id in where]
    recorded = [i.recorded for i in items]
    agree = sum(x == y for x, y in zip(b["answers"], recorded, strict=True)) / len(items)
    print(f"base proxy answers agree with the recorded answers on {agree:.0%} of {len(items)} calls")
    table = []
    for name, g in got.items():
        graded = ex.grade_exam(base, items, {"base": b["answers"], "adapter": g["answers"]}, checks)
        fig = ex.exam_figures(graded, seed=seed)
        ba = {d: v for d, v in fig["balanced_accuracy"].items() if v["lo"] is not None}
        checks_fail = {c: (v["base"], v["adapter"]) for c, v in fig["checks"].items()}
        worst = max(((d, v["adapter"]) for d, v in fig["first_share"].items() if v.get("adapter") is not None),
                    key=lambda kv: kv[1])
        row = {"variant": name, "settings": g["settings"], "train_s": g["seconds"],
               "balanced_accuracy": {d: [v["base"], v["adapter"], v["lo"], v["hi"]] for d, v in ba.items()},
               "fail": [fig["fail"]["base"], fig["fail"]["adapter"]], "cut": fig["cut"], "cut_ci": fig["cut_ci"],
               "checks": checks_fail, "worst_first": list(worst),
               "shares": {d: v["adapter"] for d, v in fig["shares"].items()},
               "right_hits": right_hits(graded), "min_mass": min(g["mass"])}
        table.append(row)
        bas = ", ".join(f"{d} {v[0]:.0%}->{v[1]:.0%} [{v[2]:.0%},{v[3]:.0%}]" for d, v in row["balanced_accuracy"].items())
        cut_ci = "[" + ", ".join(f"{x:.0%}" for x in fig["cut_ci"] if x is not None) + "]"
        print(f"{name:14s} {bas}; fail {row['fail'][0]:.2f}->{row['fail'][1]:.2f} cut {_pct(fig['cut'])} {cut_ci}; "
              f"worst first {worst[0]} {worst[1]:.0%}; "
              + "; ".join(f"{c} {x:.2f}->{y:.2f}" for c, (x, y) in checks_fail.items() if x is not None)
              + "; right answers given (base -> adapter): "
              + "; ".join(f"{d} {r} {h[0]}->{h[1]} of {h[2]}" for d, by in row["right_hits"].items()
                          for r, h in by.items()))
    (answers / "graded.json").write_text(json.dumps(table, indent=1))


def validate(loop: Path, folder: Path, model_dir: str | None, decisions: list[str]) -> None:
    """How often the proxy's pick equals the answer vLLM gave on the loop's real exam, per decision,
    for the base model and the loop's first adapter (on a 2-core CPU about a minute per 100 two-option
    calls: one forward pass per option prefix)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from simulation.services.model_assets import chat_model_dir
    from simulation.training.trainers import tokenizer_for

    model_dir = model_dir or str(chat_model_dir())
    exam = [json.loads(line) for line in open(loop / "iter-1" / "exam.jsonl", encoding="utf-8")]
    prompts = {p["call_id"]: p for p in map(json.loads, open(folder / "exam_prompts.jsonl", encoding="utf-8"))}
    rows = [r for r in exam if r["call_id"] in prompts and (not decisions or r["decision"] in decisions)]
    asked = [prompts[r["call_id"]] for r in rows]
    tok = tokenizer_for(model_dir)
    for name in ("base", "adapter"):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if name == "adapter":
            model = PeftModel.from_pretrained(model, str(loop / "adapter-1"))
        picks = _answers(model, tok, asked, "cpu")[0]
        by: dict[str, list[bool]] = {}
        for r, pick in zip(rows, picks, strict=True):
            if r["answers"][name] is not None:
                by.setdefault(r["decision"], []).append(pick == r["answers"][name])
        total = [x for v in by.values() for x in v]
        print(f"{name}: the proxy's pick equals vLLM's answer on {sum(total) / len(total):.0%} of {len(total)} calls; "
              + ", ".join(f"{d} {sum(v) / len(v):.0%} of {len(v)}" for d, v in sorted(by.items())), flush=True)


def right_hits(graded) -> dict[str, dict[str, list[int]]]:
    """Per decision and right option: how many of its calls the base and the adapter answered with it,
    and how many there are (the counts behind balanced accuracy)."""
    out: dict[str, dict[str, list[int]]] = {}
    for k, (item, right) in enumerate(zip(graded.items, graded.right, strict=True)):
        if right:
            h = out.setdefault(item.decision, {}).setdefault(right, [0, 0, 0])
            h[0] += graded.answers["base"][k] == right
            h[1] += graded.answers["adapter"][k] == right
            h[2] += 1
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prep", help="write the exam's prompts and the loop's data into DIR")
    p.add_argument("--loop", type=Path, required=True, help="a gensim correct folder (base/, data-1.jsonl)")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="train the variants and answer the exam (where the GPU is)")
    r.add_argument("--dir", type=Path, required=True, help="prep's folder")
    r.add_argument("--model", required=True, help="the base model's Hugging Face folder")
    r.add_argument("--out", type=Path, required=True, help="folder for answers-*.json")
    r.add_argument("--budget-s", type=float, default=420.0, help="stop starting variants after this (default 420)")
    r.add_argument("--decision", action="append", dest="decisions",
                   help="sit only this decision's exam calls (repeatable; default: all)")
    r.add_argument("variants", nargs="*", default=["default", "w0.5", "w0"], help=f"of {', '.join(VARIANTS)}")
    g = sub.add_parser("grade", help="grade every answers-*.json against the base model's")
    g.add_argument("--loop", type=Path, required=True)
    g.add_argument("--dir", type=Path, required=True)
    g.add_argument("--answers", type=Path, required=True)
    v = sub.add_parser("validate", help="the proxy's picks against a loop's real exam answers (base and adapter-1)")
    v.add_argument("--loop", type=Path, required=True)
    v.add_argument("--dir", type=Path, required=True)
    v.add_argument("--model", help="the base model's HF folder (default: the bundled model's)")
    v.add_argument("--decisions", nargs="*", default=["screen", "offer_decision"],
                   help="decisions to compare (default: screen offer_decision; none given: all)")
    a = ap.parse_args()
    if a.step == "validate":
        validate(a.loop, a.dir, a.model, a.decisions)
    elif a.step == "prep":
        prep(a.loop, a.out)
    elif a.step == "run":
        unknown = [n for n in a.variants if n not in VARIANTS]
        if unknown:
            ap.error(f"unknown variant(s) {', '.join(unknown)}: one of {', '.join(VARIANTS)}")
        run(a.dir, a.model, a.out, a.variants, a.budget_s, a.decisions)
    else:
        grade(a.loop, a.dir, a.answers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
