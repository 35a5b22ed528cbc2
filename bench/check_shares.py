"""The bundled model's errors, as the correction loop sees them: per scenario, each check's failure
share and the decisions' worst position bias, on the real CPU vLLM server.

    python bench/check_shares.py                     # 40 agents, 2 rounds, every shipped scenario with checks
    python bench/check_shares.py --agents 60 --scenario job_seeking

Starts the embedded chat and embedding servers once (on 127.0.0.1) and stops them by pid at the end.
Prints one JSON object per scenario: per check the failures and the actions covered over all rounds,
and per decision the share of the first-listed option and of the top option.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.cli import main as gensim  # noqa: E402
from simulation.services.vllm_server import chat_spec, embedding_spec, log_dir, start_server, wait_healthy  # noqa: E402

SCENARIOS = {"job_seeking": [], "recommendation": ["scenario.catalogue_size=400"], "chatting": []}


def shares(run: Path) -> dict:
    with sqlite3.connect(run / "run.sqlite") as db:
        checks = db.execute("SELECT check_name, SUM(1 - ok), COUNT(*) FROM checks GROUP BY check_name").fetchall()
        calls = db.execute("SELECT action, choices, completion FROM llm_calls WHERE valid = 1 AND choices IS NOT NULL "
                           "AND action NOT LIKE 'memory.%'").fetchall()
    per: dict[str, list[tuple[list[str], str]]] = defaultdict(list)
    for action, choices, answer in calls:
        per[action].append((json.loads(choices), answer))
    decisions = {}
    for action, rows in per.items():
        first = sum(1 for opts, a in rows if a == opts[0]) / len(rows)
        top = max({a for _, a in rows}, key=lambda o: sum(1 for _, a in rows if a == o))
        decisions[action] = {"n": len(rows), "first_share": round(first, 3), "top": top,
                             "top_share": round(sum(1 for _, a in rows if a == top) / len(rows), 3)}
    worst = max(decisions.items(), key=lambda kv: kv[1]["first_share"], default=(None, {}))
    return {"checks": {n: {"failed": int(f), "covered": c, "share": round(f / c, 3)} for n, f, c in checks},
            "decisions": decisions, "worst_position_bias": {"decision": worst[0], **worst[1]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every scenario, "
                    "e.g. llm.shuffle_options=true")
    a = ap.parse_args()
    chat = start_server(chat_spec(log_file=str(log_dir() / "bench_checks_chat.log")), wait=False)
    emb = start_server(embedding_spec(log_file=str(log_dir() / "bench_checks_emb.log")), wait=False)
    try:
        wait_healthy(chat, 600)
        wait_healthy(emb, 600)
        models = [{"config_name": "vllm", "model_name": chat.spec.served_name, "client_args": {"base_url": chat.base_url},
                   "max_concurrency": 32},
                  {"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
                   "client_args": {"base_url": emb.base_url}}]
        with tempfile.TemporaryDirectory(prefix="gensim-checks-") as tmp:
            for name in a.scenario or sorted(SCENARIOS):
                folder = Path(tmp) / name
                shutil.copytree(ROOT / "simulation" / "examples" / name, folder,
                                ignore=shutil.ignore_patterns("__pycache__"))
                (folder / "configs" / "model_configs.json").write_text(json.dumps(models))
                run = Path(tmp) / f"{name}-run"
                code = gensim(["run", str(folder), "--agents", str(a.agents), "--rounds", str(a.rounds),
                               "--out", str(run), "--no-progress", *SCENARIOS[name], *a.overrides])
                print(json.dumps({"scenario": name, "agents": a.agents, "rounds": a.rounds, "overrides": a.overrides,
                                  "exit": code,
                                  **(shares(run) if code == 0 else {})}), flush=True)
    finally:
        chat.stop()
        emb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
