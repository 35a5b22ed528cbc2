"""Which answers each stretch of an sft adapter's training leaned on: replays the loop's row sample
and batch order (``training.spread_sample``, ``training.data.batch_order``) for a data file and a
training seed, and prints, per window of steps and decision, the rated rows per answer (count and
loss weight, ``answer_weights``) and the anchor rows by the option their target favours.

    python bench/batch_mix.py runs/correct-x/data-1.jsonl --seed 43                # the loop's defaults
    python bench/batch_mix.py DATA --seed 43 --epochs 0.5 --window 25 --decision offer_decision

Run SR43h against SR43 (2026-12-07): at a constant rate the ungraded calls followed the last steps'
mix (README, "SR43h"); this is how that mix was read. Nothing is trained; seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.training import spread_sample  # noqa: E402
from simulation.training.choice import answer_weights  # noqa: E402
from simulation.training.data import Example, batch_order, load_examples  # noqa: E402


def row_kind(e: Example) -> str:
    """A rated row's answer, or ``anchor:<option>`` for an anchor (its target's likelier option;
    ``anchor:tie`` where two options share the top)."""
    if e.target:
        top = max(e.target.values())
        best = [o for o, p in e.target.items() if p == top]
        return "anchor:" + (best[0] if len(best) == 1 else "tie")
    return e.completion.strip()


def mix(examples: list[Example], batches: list[list[int]], window: int,
        decisions: set[str] | None = None) -> list[dict]:
    """Per window of ``window`` steps: per decision, each row kind's count and summed loss weight."""
    weights = answer_weights(examples)
    out = []
    for a in range(0, len(batches), window):
        seen: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
        for batch in batches[a:a + window]:
            for i in batch:
                e = examples[i]
                if e.options and (decisions is None or e.action in decisions):
                    got = seen[e.action][row_kind(e)]
                    got[0] += 1
                    got[1] += weights[i]
        out.append({"steps": [a + 1, min(a + window, len(batches))],
                    "decisions": {d: {k: {"rows": int(v[0]), "weight": round(v[1], 2)} for k, v in sorted(kinds.items())}
                                  for d, kinds in sorted(seen.items())}})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, help="the iteration's training rows (the loop's data-N.jsonl)")
    p.add_argument("--seed", type=int, required=True, help="the training seed (correction.json's train_seed)")
    p.add_argument("--max-samples", type=int, default=1600, help="the loop's --max-samples (default 1600)")
    p.add_argument("--epochs", type=float, default=1.0, help="the loop's --epochs (default 1)")
    p.add_argument("--batch-size", type=int, default=8, help="sft's batch size (the loop's: 8)")
    p.add_argument("--window", type=int, default=50, help="steps per line (default 50)")
    p.add_argument("--decision", action="append", help="only this decision (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    a = p.parse_args(argv)
    if not a.data.is_file():
        print(f"batch_mix: {a.data}: no such file", file=sys.stderr)
        return 2
    for name, v in (("--epochs", a.epochs), ("--batch-size", a.batch_size), ("--window", a.window),
                    ("--max-samples", a.max_samples)):
        if not v > 0:
            print(f"batch_mix: {name} must be above 0, got {v}", file=sys.stderr)
            return 2
    examples = load_examples(a.data, "sft")
    if len(examples) > a.max_samples:
        examples = spread_sample(examples, a.max_samples, a.seed)
    got = mix(examples, batch_order(len(examples), a.epochs, a.batch_size, a.seed), a.window,
              set(a.decision) if a.decision else None)
    if a.json:
        print(json.dumps(got))
        return 0
    for w in got:
        for d, kinds in w["decisions"].items():
            print(f"steps {w['steps'][0]}-{w['steps'][1]} {d}: "
                  + ", ".join(f"{k} {v['rows']} (weight {v['weight']:.1f})" for k, v in kinds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
