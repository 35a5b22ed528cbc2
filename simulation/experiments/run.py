"""Running an experiment: every (cell, seed) as an ordinary run folder under ``<out>/runs/``, up to
``parallel`` at once (each a ``gensim run`` process, so a crash or a kill stays in its folder), the
embedded servers started once for all of them, then the tidy results, the summary with intervals and
the plots. A re-run of the same command skips finished runs and resumes interrupted ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ConfigError, ConfigProblem
from ..store.query import RunQuery
from .aggregate import plot_file, plot_metric, summarise
from .design import ExperimentDesign, cell_name, run_args

CLI = "import sys; from simulation.cli import main; sys.exit(main(sys.argv[1:]))"
_LIVE: set[subprocess.Popen] = set()  # the runs in progress, stopped when the experiment is interrupted
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class PlannedRun:
    """One run of the experiment: a cell of the grid with a seed, and its folder."""

    cell: dict[str, str]
    cell_name: str
    seed: int
    folder: Path


@dataclass(frozen=True)
class RunOutcome:
    run: PlannedRun
    state: str  # done, skipped (finished before), failed
    seconds: float = 0.0
    reason: str | None = None


def plan_runs(design: ExperimentDesign, out: Path) -> list[PlannedRun]:
    return [PlannedRun(cell, cell_name(cell), seed, out / "runs" / cell_name(cell) / f"seed-{seed}")
            for cell in design.cells() for seed in design.seeds]


def run_state(folder: Path) -> str:
    """``done`` (finished), ``partial`` (started: resumable) or ``new``."""
    if not (folder / "run.sqlite").is_file():
        return "new"
    try:
        with RunQuery(folder) as rq:
            return "done" if rq.meta().get("finished") is True else "partial"
    except Exception:  # an unreadable folder left by a kill before its first write: start it again
        return "partial"


def _command(design: ExperimentDesign, run: PlannedRun, state: str, extra: list[str]) -> list[str]:
    base = [sys.executable, "-c", CLI, "run", design.scenario]
    if state == "partial" and (run.folder / "checkpoints").is_dir() and any((run.folder / "checkpoints").iterdir()):
        # the experiment's shared servers may have started again elsewhere: the run resumes on them
        return [*base, "--resume", str(run.folder), "--no-progress", *extra]
    args = run_args(design, run.cell, run.seed)
    cmd = [*base, "--seed", str(run.seed), "--out", str(run.folder), "--no-progress"]
    if args["agents"]:
        cmd += ["--agents", str(args["agents"])]
    if args["rounds"]:
        cmd += ["--rounds", str(args["rounds"])]
    if design.llm:
        cmd += ["--llm", design.llm]
    return [*cmd, *args["overrides"], *extra]


def _execute(design: ExperimentDesign, run: PlannedRun, extra: list[str]) -> RunOutcome:
    state = run_state(run.folder)
    if state == "done":
        return RunOutcome(run, "skipped")
    if state == "partial" and not (run.folder / "checkpoints").is_dir():
        import shutil

        shutil.rmtree(run.folder)  # killed before its first round ended: nothing to resume
    run.folder.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run.folder.parent / f"{run.folder.name}.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(_command(design, run, state, extra), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            proc.wait()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    took = time.perf_counter() - t0
    if proc.returncode != 0 or run_state(run.folder) != "done":
        lines = (run.folder.parent / f"{run.folder.name}.log").read_text(encoding="utf-8").strip().splitlines()
        return RunOutcome(run, "failed", took, (lines[-1] if lines else f"exit {proc.returncode}")[:300])
    return RunOutcome(run, "done", took)


def _check_design(design: ExperimentDesign, out: Path, emit: Callable[[str], None] = print) -> None:
    path = out / "experiment.json"
    if not path.is_file():
        return
    old = ExperimentDesign.model_validate(json.loads(path.read_text(encoding="utf-8"))["design"])
    diff = design.differences(old)
    added = design.extension_of(old)
    if added:
        emit(f"extending the experiment in {out} (adds {'; '.join(added)}): its finished runs are kept")
    elif diff:
        raise ConfigError([ConfigProblem(str(path), "design", "this folder holds another experiment ("
                                         + "; ".join(diff) + "): use another --out")])


def _write_record(out: Path, design: ExperimentDesign, **extra: Any) -> None:
    path = out / "experiment.json"
    rec = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    rec.update({"design": design.model_dump(), **extra})
    path.write_text(json.dumps(rec, indent=1), encoding="utf-8")


def collect(out: Path, runs: list[PlannedRun], design: ExperimentDesign) -> pd.DataFrame:
    """Tidy rows ``(cell, <grid keys>, seed, round, metric, value)`` of every finished run, its
    per-round costs included as ``cost.*`` metrics."""
    frames = []
    for run in runs:
        if run_state(run.folder) != "done":
            continue
        with RunQuery(run.folder) as rq:
            long = rq.metrics_long().rename(columns={"name": "metric"})
            cost = rq.costs()
        if len(cost):
            c = cost.reset_index().melt(id_vars="round", var_name="metric", value_name="value")
            c["metric"] = "cost." + c["metric"]
            long = pd.concat([long, c], ignore_index=True)
        long.insert(0, "seed", run.seed)
        for k in reversed(list(design.grid)):
            long.insert(0, k, run.cell[k])
        long.insert(0, "cell", run.cell_name)
        frames.append(long)
    cols = ["cell", *design.grid, "seed", "round", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)[cols]
    df["round"] = df["round"].astype(int)
    df["value"] = df["value"].astype(float)
    return df


def _shared_servers(design: ExperimentDesign, out: Path, progress: bool) -> tuple[Any, list[str]]:
    """Start the embedded servers once for every run (when the scenario has no endpoints of its own):
    ``(services to stop, extra settings naming them)``."""
    if design.llm == "fake" or any(k.startswith("embedded.") for k in design.grid):
        return None, []  # a grid over the embedded servers themselves: each run starts its own
    from ..runner import RunOptions, prepare_config
    from ..services.endpoints import Services

    overrides = [*design.overrides, *([f"llm.backend={design.llm}"] if design.llm else [])]
    _, cfg = prepare_config(RunOptions(scenario=design.scenario, agents=design.agents, overrides=overrides))
    if cfg.simulation.llm.backend == "fake":
        return None, []
    services = Services(progress=progress)
    chat, emb = services.resolve(cfg)
    if not services.started:  # endpoints configured or launched elsewhere: every run finds them itself
        services.stop()
        return None, []
    path = out / "endpoints.json"
    path.write_text(json.dumps([m.model_dump(mode="json", by_alias=True) for m in [*chat, *emb]], indent=1))
    return services, [f"model_config={path}"]


def run_experiment(design: ExperimentDesign, out: str | Path, parallel: int = 1, progress: bool = True,
                   emit: Callable[[str], None] = print) -> pd.DataFrame:
    """Run (or go on with) an experiment into ``out``; returns the tidy results (one row per cell,
    grid values, seed, round, metric and value) and writes ``results.parquet``, ``summary.csv``,
    ``plots/`` and ``experiment.json``."""
    out = Path(out)
    if parallel < 1:
        raise ConfigError([ConfigProblem("<command line>", "--parallel", f"must be at least 1, got {parallel}")])
    if design.baseline is not None and design.baseline_cell() is None:
        raise ConfigError([ConfigProblem("<command line>", "--baseline", f"{design.baseline} is not a grid cell")])
    _check_design(design, out, emit)
    check_cells(design)
    out.mkdir(parents=True, exist_ok=True)
    _write_record(out, design)
    runs = plan_runs(design, out)
    todo = [r for r in runs if run_state(r.folder) != "done"]
    emit(f"experiment {out}: {len(design.cells())} cells x {len(design.seeds)} seeds = {len(runs)} runs; "
         f"{len(runs) - len(todo)} finished before, {len(todo)} to run, {parallel} at a time")
    outcomes: list[RunOutcome] = []
    services, extra = _shared_servers(design, out, progress) if todo else (None, [])
    if parallel > 1:  # on a Ray cluster each run takes its share of the slots (ignored by local runs)
        extra = [*extra, f"cluster_share={1 / parallel:.6g}"]
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=parallel)
    try:
        futures = [pool.submit(_execute, design, r, extra) for r in todo]
        try:
            for k, fut in enumerate(as_completed(futures), 1):
                o = fut.result()
                outcomes.append(o)
                left = (time.perf_counter() - t0) / k * (len(todo) - k)
                emit(f"[{k}/{len(todo)}] {o.run.cell_name} seed {o.run.seed}: {o.state}"
                     + (f" in {o.seconds:.1f}s" if o.seconds else "") + (f" ({o.reason})" if o.reason else "")
                     + (f"; about {left:.0f}s left" if k < len(todo) else ""))
        except BaseException:  # Ctrl-C or SIGTERM: no new run starts, the running ones stop (resumable)
            pool.shutdown(wait=False, cancel_futures=True)
            with _LIVE_LOCK:
                for proc in _LIVE:
                    proc.send_signal(signal.SIGINT)
            raise
    finally:
        pool.shutdown(wait=True)
        if services is not None:
            services.stop()
    results = collect(out, runs, design)
    results.to_parquet(out / "results.parquet", index=False)
    base = cell_name(design.baseline_cell()) if design.baseline_cell() is not None else None
    summary = summarise(results, base)
    summary.to_csv(out / "summary.csv", index=False)
    for metric in sorted(results["metric"].unique()) if len(results) else []:
        plot_metric(summary, metric, out / "plots" / plot_file(metric))
    failed = [o for o in outcomes if o.state == "failed"]
    _write_record(out, design, runs={str(o.run.folder.relative_to(out)): {"state": o.state, "seconds": round(
        o.seconds, 2), "reason": o.reason} for o in outcomes}, wall_s=round(time.perf_counter() - t0, 2),
        seeds_per_cell=summary.groupby("cell")["n"].max().to_dict() if len(summary) else {})
    for o in failed:
        emit(f"failed: {o.run.folder.relative_to(out)}: {o.reason}")
    err = forecast_error(out, results)
    if err is not None:
        _write_record(out, design, forecast_vs_actual=err)
        emit("forecast vs actual: " + "; ".join(f"{k} {v['forecast']:,} vs {v['actual']:,}" + (
            f" ({v['error']:+.0%})" if v["error"] is not None else "") for k, v in err.items()))
    return results


def check_cells(design: ExperimentDesign) -> None:
    """Every cell's settings loaded and validated as its runs will load them, before any run starts: a
    misspelt key is one error naming it, not every run failing with it."""
    from ..runner import RunOptions, prepare_config

    for cell in design.cells():
        args = run_args(design, cell, design.seeds[0])
        prepare_config(RunOptions(scenario=design.scenario, agents=args["agents"], rounds=args["rounds"],
                                  overrides=args["overrides"]))


def failed_runs(out: str | Path) -> list[str]:
    """The experiment's runs that failed in its last invocation (their folders, with the reason)."""
    rec = json.loads((Path(out) / "experiment.json").read_text(encoding="utf-8"))
    return [f"{k}: {v['reason']}" for k, v in sorted(rec.get("runs", {}).items()) if v["state"] == "failed"]


def _population(design: ExperimentDesign, cell: dict[str, str]) -> tuple[int, int]:
    """A run's agents and rounds (the scenario's own where neither the cell nor the design sets them)."""
    from ..runner import RunOptions, prepare_config

    args = run_args(design, cell, design.seeds[0])
    if args["agents"] and args["rounds"]:
        return args["agents"], args["rounds"]
    _, cfg = prepare_config(RunOptions(scenario=design.scenario, agents=args["agents"], overrides=args["overrides"]))
    return (args["agents"] or sum(a.count for a in cfg.simulation.agents.values()),
            args["rounds"] or cfg.simulation.rounds)


def forecast(design: ExperimentDesign, out: str | Path, parallel: int = 1, pilot_agents: int = 10,
             emit: Callable[[str], None] = print) -> dict[str, Any]:
    """A one-round pilot of the first cell on a few agents, scaled to every run's agents and rounds:
    the runs, LLM calls, tokens and wall time the experiment will take (server start left out). Stored
    in ``experiment.json``, to be compared with what the experiment really took."""
    out = Path(out)
    _check_design(design, out, emit)
    check_cells(design)
    out.mkdir(parents=True, exist_ok=True)
    cell = design.cells()[0]
    agents, _ = _population(design, cell)
    pilot = PlannedRun({**cell, "agents": str(min(agents, pilot_agents)), "rounds": "1"}, "pilot", design.seeds[0],
                       out / "pilot" / f"agents-{min(agents, pilot_agents)}")
    got = _execute(design, pilot, [])
    if got.state == "failed":
        raise ConfigError([ConfigProblem(str(pilot.folder), "pilot", f"the pilot run failed: {got.reason}")])
    with RunQuery(pilot.folder) as rq:
        cost = rq.costs().iloc[0]
    n = min(agents, pilot_agents)
    per = {k: float(cost[k]) / n for k in ("llm_calls", "prompt_tokens", "completion_tokens", "wall_s")}
    runs = plan_runs(design, out)
    total = dict.fromkeys(per, 0.0)
    for r in runs:
        a, rounds = _population(design, r.cell)
        for k in per:
            total[k] += per[k] * a * rounds
    fc = {"runs": len(runs), "llm_calls": round(total["llm_calls"]), "tokens": round(total["prompt_tokens"]
                                                                                   + total["completion_tokens"]),
          "round_wall_s": round(total["wall_s"], 1),
          "wall_s_at_parallel": round(total["wall_s"] / min(parallel, len(runs)), 1), "parallel": parallel,
          "pilot": {"agents": n, **{k: float(cost[k]) for k in per}}}
    _write_record(out, design, forecast=fc)
    emit(f"forecast ({n}-agent one-round pilot, scaled to each run's agents and rounds): {fc['runs']} runs, "
         f"{fc['llm_calls']:,} LLM calls, {fc['tokens']:,} tokens, {fc['round_wall_s']:.0f}s of rounds "
         f"(about {fc['wall_s_at_parallel']:.0f}s at --parallel {parallel}; server start and setup not included)")
    return fc


def forecast_error(out: Path, results: pd.DataFrame) -> dict[str, Any] | None:
    """The stored forecast beside what the runs really took (their recorded costs)."""
    path = out / "experiment.json"
    rec = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    fc = rec.get("forecast")
    if not fc or results.empty:
        return None
    total = results[results["metric"].str.startswith("cost.")].groupby("metric")["value"].sum()
    actual = {"llm_calls": float(total.get("cost.llm_calls", 0.0)),
              "tokens": float(total.get("cost.prompt_tokens", 0.0) + total.get("cost.completion_tokens", 0.0)),
              "round_wall_s": float(total.get("cost.wall_s", 0.0))}
    return {k: {"forecast": fc[k], "actual": round(v, 3), "error": round(fc[k] / v - 1, 3) if v else None}
            for k, v in actual.items()}
