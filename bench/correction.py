"""The correction loop, measured: job seeking on the bundled model (base, SFT iterations 1-3, PPO
iteration 1) and recommendation (SFT iteration 1), with checks as the rater and the judge score as
a second column, on held-out agents against a control group in the same round.

    python bench/correction.py                      # 120 agents, 3 SFT iterations, PPO, recommendation
    python bench/correction.py --agents 120 --sft-iterations 1 --no-ppo --no-recommendation

Each run starts its own embedded CPU chat server (merge mode restarts servers the run started); one
embedding server is started here for all of them and stopped by pid at the end. Prints each
iteration as it comes, then the targets, then one JSON line with ``base_fail``, ``sft_fail`` (a list
over iterations), ``ppo_fail``, ``judge_base``, ``judge_sft``, ``swap_s``, ``train_s`` and the same
under ``recommendation``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.correction.loop import CorrectOptions, correct  # noqa: E402
from simulation.services.vllm_server import embedding_spec, log_dir, start_server  # noqa: E402

# shuffled options: position bias (the share of answers taking the option listed first) shows apart
SCENARIOS = {"job_seeking": ["llm.shuffle_options=true"],
             "recommendation": ["scenario.catalogue_size=400", "llm.shuffle_options=true"]}


def scenario_copy(tmp: Path, name: str, emb) -> Path:
    folder = tmp / name
    shutil.copytree(ROOT / "simulation" / "examples" / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "configs" / "model_configs.json").write_text(json.dumps([
        {"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
         "client_args": {"base_url": emb.base_url}}]))
    return folder


def worst_bias(out: Path) -> float | None:
    details = json.loads((out / "correction.json").read_text())["details"]
    return details[-1]["worst_first_share"] if details else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=120)
    ap.add_argument("--sft-iterations", type=int, default=3)
    ap.add_argument("--max-samples", type=int, default=300, help="SFT rows per iteration, at most")
    ap.add_argument("--ppo-samples", type=int, default=64, help="PPO reward rows, at most (PPO costs ~15 s a step on CPU)")
    ap.add_argument("--judge-samples", type=int, default=24)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--no-ppo", action="store_true")
    ap.add_argument("--no-recommendation", action="store_true")
    # 5 rounds: at 120 agents the bundled model watched 9 + 30 + 27 films in 3 rounds (2026-12-05), 66 actions for
    # the watch checks; about 28 a round after the first, so 5 rounds give the checks over 100 actions
    ap.add_argument("--rec-rounds", type=int, default=5, help="recommendation's base-run rounds (default 5)")
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    a = ap.parse_args()
    tmp = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="gensim-correction-"))
    tmp.mkdir(parents=True, exist_ok=True)
    emb = start_server(embedding_spec(log_file=str(log_dir() / "bench_correction_emb.log")), timeout=600)
    t0 = time.perf_counter()
    result: dict = {}
    try:
        js = scenario_copy(tmp, "job_seeking", emb)
        common = dict(rater="checks", judge_score=True, samples=a.judge_samples, agents=a.agents, seed=11,
                      max_samples=a.max_samples, epochs=a.epochs, progress=False)
        print(f"== job_seeking, SFT x{a.sft_iterations} ({a.agents} agents)", flush=True)
        sft = correct(CorrectOptions(str(js), iterations=a.sft_iterations, method="sft", out=str(tmp / "js-sft"),
                                     overrides=list(SCENARIOS["job_seeking"]), **common), emit=lambda s: print(s, flush=True))
        result.update(base_fail=sft["base_holdout_fail"], base_control_fail=sft["base_control_fail"],
                      sft_fail=[i["holdout_fail"] for i in sft["iterations"]],
                      sft_control_fail=[i["control_fail"] for i in sft["iterations"]],
                      judge_base=sft["judge_base"], judge_sft=[i["judge"] for i in sft["iterations"]],
                      swap_s=[i["swap_s"] for i in sft["iterations"]], train_s=[i["train_s"] for i in sft["iterations"]],
                      worst_first_share_sft=worst_bias(tmp / "js-sft"))
        if not a.no_ppo:
            print("== job_seeking, PPO x1 (same base run)", flush=True)
            ppo = correct(CorrectOptions(str(js), iterations=1, method="ppo", out=str(tmp / "js-ppo"),
                                         base=str(tmp / "js-sft" / "base"), overrides=list(SCENARIOS["job_seeking"]),
                                         **{**common, "max_samples": a.ppo_samples}), emit=lambda s: print(s, flush=True))
            result.update(ppo_fail=ppo["iterations"][0]["holdout_fail"], ppo_control_fail=ppo["iterations"][0]["control_fail"],
                          judge_ppo=ppo["iterations"][0]["judge"], ppo_train_s=ppo["iterations"][0]["train_s"],
                          ppo_swap_s=ppo["iterations"][0]["swap_s"])
        if not a.no_recommendation:
            print(f"== recommendation, SFT x1 ({a.agents} agents)", flush=True)
            rec_dir = scenario_copy(tmp, "recommendation", emb)
            rec = correct(CorrectOptions(str(rec_dir), iterations=1, method="sft", out=str(tmp / "rec-sft"),
                                         rounds=a.rec_rounds, overrides=list(SCENARIOS["recommendation"]), **common),
                          emit=lambda s: print(s, flush=True))
            result["recommendation"] = {
                "base_fail": rec["base_holdout_fail"], "sft_fail": [i["holdout_fail"] for i in rec["iterations"]],
                "control_fail": [i["control_fail"] for i in rec["iterations"]], "judge_base": rec["judge_base"],
                "judge_sft": [i["judge"] for i in rec["iterations"]], "swap_s": [i["swap_s"] for i in rec["iterations"]],
                "train_s": [i["train_s"] for i in rec["iterations"]]}
    finally:
        emb.stop()
    base, fails = result.get("base_fail"), result.get("sft_fail") or []
    print("\n== targets")
    if base is not None and fails and fails[0] is not None:
        print(f"  SFT 1 at least halves held-out failures: {fails[0]} vs base {base} -> "
              f"{'met' if fails[0] <= base / 2 else 'MISSED'}")
        rises = [f"{x}->{y}" for x, y in zip(fails, fails[1:], strict=False) if x is not None and y is not None and y > x]
        print(f"  no rise in later iterations: {'met' if not rises else 'MISSED (' + ', '.join(rises) + ')'}")
    if result.get("ppo_fail") is not None and base is not None:
        print(f"  PPO lowers it: {result['ppo_fail']} vs base {base} -> {'met' if result['ppo_fail'] < base else 'MISSED'}")
    if result.get("worst_first_share_sft") is not None:
        w = result["worst_first_share_sft"]
        print(f"  worst position bias below 70%: {w:.0%} -> {'met' if w < 0.7 else 'MISSED'}")
    result["bench_s"] = round(time.perf_counter() - t0, 1)
    result["runs"] = str(tmp)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
