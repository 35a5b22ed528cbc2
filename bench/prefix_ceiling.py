"""The most a prefix cache could give a recorded run: replay its prompts through an infinite cache.

    python bench/prefix_ceiling.py RUN_DIR [--block 32]

Each call's prompt (the chat template applied, as vLLM sees it) is cut into ``--block``-token blocks;
a block hits when the same token prefix up to its end was seen in any earlier call. The result is the
hit rate an unbounded KV cache with that block size would reach on this run's prompts, overall and
per action: the ceiling ``bench/utilization.py``'s measured rate can approach. Any run works,
including a ``--llm fake`` one (its prompts have the real structure).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--block", type=int, default=32, help="KV block size in tokens (GenSim's CPU servers: 32)")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    from simulation.services.model_assets import chat_model_dir

    tok = AutoTokenizer.from_pretrained(str(chat_model_dir()))
    seen: set[tuple[int, ...]] = set()
    total = hits = 0
    per: dict[str, list[int]] = {}
    with sqlite3.connect(a.run_dir / "run.sqlite") as db:
        rows = db.execute("SELECT action, prompt FROM llm_calls ORDER BY id").fetchall()
    for action, prompt in rows:
        text = tok.apply_chat_template(json.loads(prompt), add_generation_prompt=True, tokenize=False)
        ids = tok.encode(text, add_special_tokens=False)
        blocks = len(ids) // a.block
        hit = 0
        for b in range(blocks):  # the longest cached run of whole blocks from the start
            if tuple(ids[: (b + 1) * a.block]) not in seen:
                break
            hit = (b + 1) * a.block
        seen.update(tuple(ids[: (b + 1) * a.block]) for b in range(blocks))
        total += len(ids)
        hits += hit
        row = per.setdefault(action, [0, 0])
        row[0] += len(ids)
        row[1] += hit
    for action, (n, h) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        print(f"{action:22s} {n:9,d} tokens  ceiling {h / n:.2f}", file=sys.stderr)
    print(json.dumps({"calls": len(rows), "prompt_tokens": total, "block": a.block,
                      "hit_rate_ceiling": round(hits / total, 3) if total else None}))


if __name__ == "__main__":
    main()
