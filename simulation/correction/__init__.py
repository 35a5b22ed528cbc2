"""The correction loop's first half: rate a run's LLM calls and turn the ratings into datasets.

One controller API for the CLI, Python and the web interface: :func:`rate_run` and
:func:`write_dataset`. Forking a run from a round is ``gensim run --fork`` (:mod:`simulation.fork`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, ConfigProblem
from ..store import RunLock, RunStore
from .datasets import KINDS, dataset_rows, write_dataset
from .ratings import (
    Rating,
    add_ratings,
    judge_agreement,
    load_calls,
    ratings_from_checks,
    ratings_from_file,
    ratings_from_judge,
    sample_calls,
)

# gensim correct's option values, here (light) for the CLI's choices and the loop's checks alike
ADAPTER_SCOPES = ("all", "targeted")  # --adapter-scope: which of its agents' calls the adapter answers
RATED_ROWS = ("all", "spread")  # --rated-rows: a checked decision's rated rows all trained, or spread with the rest
UNGRADED = ("leave", "anchor")  # --ungraded: a checked decision's calls no check grades, left out or anchored
UNTARGETED = ("base", "averaged")  # --untargeted: who answers the choices a scoped adapter leaves
PICKS = ("last", "anchors")  # --pick: which saved step of a training the fork serves

DEFAULT_RUBRIC = ("Does the answer fit this person's profile and situation, and is it consistent with what the "
                  "person was told? A choice should follow from the facts in the prompt.")

__all__ = ["KINDS", "Rating", "dataset_rows", "rate_run", "write_dataset"]


def rate_run(run_dir: str | Path, by: str, judge: str | None = None, sample: int | None = None,
             action: str | None = None, round_: int | None = None, seed: int = 0, file: str | Path | None = None,
             rewrite: bool = True, progress: bool = True, scenario: str | None = None) -> dict[str, Any]:
    """Add ratings to a run (``by``: checks, judge or file); returns what was added.

    A judge's rubric comes from the scenario: a bundled one found by the name the run recorded, or
    the folder ``scenario`` names; never from a folder a received run's config points at.
    """
    run = Path(run_dir)
    if not (run / "run.sqlite").is_file():
        raise ConfigError([ConfigProblem(str(run), "run.sqlite", "not a run folder")])
    lock = RunLock(run, f"rate --by {by}").acquire()  # a resume truncating rounds would orphan ratings
    store = RunStore(run / "run.sqlite")
    unanswered = 0  # calls the judge was asked about and gave no valid score for
    try:
        if by == "checks":
            ratings = ratings_from_checks(store, action, round_)
            if not ratings:
                raise ConfigError([ConfigProblem(str(run), "checks", "no check results to rate from "
                                                 "(the scenario declares no checks, or none covered these actions)")])
        elif by == "file":
            if file is None:
                raise ConfigError([ConfigProblem("<command line>", "--file", "--by file needs --file F")])
            ratings = ratings_from_file(store, Path(file))
        elif by == "judge":
            ratings, asked = asyncio.run(_judge(run, store, judge, sample, action, round_, seed, rewrite, progress,
                                                      scenario))
            unanswered = asked - len(ratings)
            checked = list(store.db.execute("SELECT llm_call_id, ok FROM check_calls"))
            agreement = judge_agreement({r.llm_call_id: r.score for r in ratings if r.score is not None},
                                        {c for c, ok in checked if ok}, {c for c, ok in checked if not ok})
        else:
            raise ConfigError([ConfigProblem("<command line>", "--by", f"one of checks, judge, file; got {by!r}")])
        added = add_ratings(store, ratings)
    finally:
        store.close()
        lock.release()
    scores = [r.score for r in ratings if r.score is not None]
    out = {"rated_calls": len({r.llm_call_id for r in ratings}), "ratings_added": added,
           "rewrites": sum(r.rewrite is not None for r in ratings),
           "mean_score": round(sum(scores) / len(scores), 3) if scores else None}
    if by == "judge":
        out["judge_gave_no_score"] = unanswered
        out["judge_vs_checks"] = agreement
    return out


async def _judge(run: Path, store: RunStore, judge: str | None, sample: int | None, action: str | None,
                 round_: int | None, seed: int, rewrite: bool, progress: bool,
                 scenario: str | None = None) -> tuple[list[Rating], int]:
    from ..llm.recording import NoSink
    from ..runner import Services, read_run_config, recorded_scenario
    from ..runtime.clients import build_chat_client

    spec, cfg = recorded_scenario(run, read_run_config(run), scenario)  # the rubric's folder: never the run's word
    where, args = ["valid = 1 OR error LIKE 'StructuredOutputError%'"], []
    if action:
        where.append("action = ?")
        args.append(action)
    if round_ is not None:
        where.append("round = ?")
        args.append(round_)
    calls = [c for c in load_calls(store, "WHERE " + " AND ".join(f"({w})" for w in where), tuple(args))
             if not c.action.startswith("memory.")]
    if not calls:
        raise ConfigError([ConfigProblem(str(run), "llm_calls", "no calls to judge for that selection")])
    failed = {i for (i,) in store.db.execute("SELECT llm_call_id FROM check_calls WHERE ok = 0")}
    chosen = sample_calls(calls, sample or len(calls), seed, failed)
    services = Services()
    try:
        if judge:
            models = [m for m in cfg.chat_models() if m.config_name == judge]
            if not models:
                names = ", ".join(m.config_name for m in cfg.chat_models()) or "none"
                raise ConfigError([ConfigProblem(str(run / "config.json"), "--judge",
                                                 f"no chat model named {judge!r} (there: {names})")])
        else:
            models = services.resolve(cfg, embeddings=False)[0]
            if not models and cfg.simulation.llm.backend != "fake":  # a fake run is judged by the fake model
                raise ConfigError([ConfigProblem(str(run), "--judge", "no chat endpoint to judge with")])
        client = build_chat_client(cfg, models, NoSink())  # rating never adds to what the run recorded
        prompts = spec.prompts_dir or Path(cfg.scenario_dir) / "prompts"

        def rubric_for(c: Any) -> str:
            for name in (f"rubric_{c.action}.txt", "rubric.txt"):
                if (prompts / name).is_file():
                    return (prompts / name).read_text().strip()
            return DEFAULT_RUBRIC

        def profile_of(agent_id: str) -> str:
            return json.dumps(store.profile(agent_id), ensure_ascii=False)

        rater = f"judge:{judge or (models[0].config_name if models else 'fake')}"
        try:
            ratings = await ratings_from_judge(chosen, client, rater, rubric_for, profile_of, rewrite, progress=progress)
            return ratings, len(chosen)
        finally:
            await client.aclose()
    finally:
        services.stop()
