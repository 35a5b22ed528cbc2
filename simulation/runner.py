"""Build and run a simulation: resolve config, pick or start endpoints, wire clients, run, summarise."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import ValidationError

from . import schedule
from .config import ConfigError, ConfigProblem, RunConfig, load_run_config, resolve_scenario_dir
from .config.errors import problems_from_validation
from .config.loader import EXAMPLES_DIR, SIM_CONFIG, read_model_configs
from .config.models import ModelConfig
from .core.checkpoint import latest_checkpoint
from .core.errors import RunStopped
from .core.scenario import ScenarioSpec, load_scenario, phase_problems
from .core.simulator import Simulator
from .population import scale_counts
from .runtime import GroupSpec, Runtime, make_runtime
from .runtime.clients import build_embeddings
from .services.endpoints import Services, kv_cache_env  # noqa: F401 (kv_cache_env: re-exported)
from .store import RunLock, RunStore


@dataclass
class RunOptions:
    """What ``gensim run`` accepts."""

    scenario: str | None = None
    agents: int | None = None
    rounds: int | None = None
    seed: int | None = None
    runtime: str | None = None
    replay: str | None = None
    resume: str | None = None
    fork: str | None = None  # a run folder to fork ...
    from_round: int | None = None  # ... from its checkpoint of the round before this one
    out: str | None = None
    overrides: list[str] = field(default_factory=list)
    progress: bool = True
    hooks: dict[str, list[Any]] = field(default_factory=dict)  # Simulator hooks, for library use
    interventions: list[tuple[int, str | None]] = field(default_factory=list)  # (round, text or None: clear)
    attributes: list[tuple[int, str, str, Any]] = field(default_factory=list)  # (round, agent, path, value)
    created: bool = False  # the folder to resume was made by this command (a fork): bad input removes it
    on_simulator: Any = None  # called with the Simulator once it is set up (a controller's handle on a live run)
    on_line: Any = None  # also called with each server start line (the web interface shows them)


def prepare_config(opts: RunOptions) -> tuple[ScenarioSpec, RunConfig]:
    """Load, override and validate a scenario's config (``gensim check`` stops here)."""
    assert opts.scenario is not None
    folder = resolve_scenario_dir(opts.scenario)
    spec = load_scenario(folder)
    overrides = list(opts.overrides)
    for key, val in (("rounds", opts.rounds), ("seed", opts.seed), ("runtime", opts.runtime)):
        if val is not None:
            overrides.append(f"{key}={val}")
    cfg = load_run_config(folder, overrides, spec.params_model, spec.validators, spec.agent_classes.keys())
    problems = phase_problems(spec, cfg.params, cfg.simulation.seed)
    if problems:
        raise ConfigError(problems)
    if opts.agents is not None:
        try:
            counts = scale_counts({t: a.count for t, a in cfg.simulation.agents.items()}, opts.agents)
        except ValueError as e:
            raise ConfigError([ConfigProblem("<command line>", "--agents", str(e))]) from None
        for t, n in counts.items():
            cfg.simulation.agents[t].count = n
    return spec, cfg


EXECUTION_FIELDS = ("runtime", "ray_address", "servers", "concurrency")  # how a run executes, not what it is


def moved_endpoints(path: Path, recorded: list[ModelConfig]) -> list[ModelConfig]:
    """The entries of a ``model_configs.json`` that serves the recorded models at other addresses (an
    experiment's shared servers, started again on other ports, when it resumes a run). The models
    themselves may not change: every entry's config name, type and model name must be the recorded ones."""
    problems: list[ConfigProblem] = []
    models = read_model_configs(path, problems)
    if problems:
        raise ConfigError(problems)

    def ident(ms: list[ModelConfig]) -> list[tuple[str, str, str]]:
        return sorted((m.config_name, m.model_type, m.model_name) for m in ms)

    if ident(models) != ident(recorded):
        raise ConfigError([ConfigProblem(str(path), "model_config", "a resume or replay may move the recorded models "
                                         f"to other addresses, not change them: recorded {ident(recorded)}, "
                                         f"given {ident(models)}")])
    return models


def read_run_config(run_dir: Path, opts: RunOptions | None = None) -> RunConfig:
    """A recorded run's config; a replay or resume may change only how it executes."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(run_dir), "config.json", "not a run folder (no config.json)")])
    try:
        cfg = RunConfig.model_validate_json(path.read_text())
    except ValidationError as e:
        raise ConfigError(problems_from_validation(e, str(path))) from None
    if opts is None:
        return cfg
    changes: dict[str, Any] = {"runtime": opts.runtime} if opts.runtime else {}
    for item in opts.overrides:
        key, _, value = item.partition("=")
        if key == "model_config":
            cfg = cfg.model_copy(update={"models": moved_endpoints(Path(value), cfg.models)})
            continue
        if key not in EXECUTION_FIELDS:
            raise ConfigError([ConfigProblem("<command line>", key, "a replay or resume may change only "
                                             + ", ".join(EXECUTION_FIELDS) + " and model_config (where the "
                                             "same models are served now)")])
        changes[key] = value
    if opts.agents is not None or opts.rounds is not None or opts.seed is not None:
        raise ConfigError([ConfigProblem("<command line>", "--agents/--rounds/--seed",
                                         "a replay or resume keeps the recorded run's population, rounds and seed")])
    if changes:
        data = cfg.simulation.model_dump(by_alias=True)
        data.update(changes)
        try:
            sim = type(cfg.simulation).model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            raise ConfigError([ConfigProblem("<command line>", ".".join(map(str, err["loc"])), err["msg"])]) from None
        cfg = cfg.model_copy(update={"simulation": sim})
    return cfg


def recorded_scenario(run_dir: Path, cfg: RunConfig, given: str | None) -> tuple[ScenarioSpec, RunConfig]:
    """The scenario of a recorded run, and its config pointing there.

    A run folder is data: the folder its ``config.json`` names is never imported, since a run
    someone sent you could name code of theirs. A bundled scenario is found by its name; any
    other is the folder the user gives on the command line. That scenario must be the one recorded.
    """
    recorded = Path(cfg.scenario_dir)
    where = str(run_dir / "config.json")
    if given is not None:
        folder = resolve_scenario_dir(given)
    elif (recorded.parent.name == "examples" and recorded.parent.parent.name == "simulation"
          and (EXAMPLES_DIR / recorded.name / SIM_CONFIG).is_file()):
        folder = EXAMPLES_DIR / recorded.name
    else:
        raise ConfigError([ConfigProblem(where, "scenario_dir", (
            f"{recorded} is not a bundled scenario, and GenSim never runs code a run folder names: give the "
            f"scenario folder yourself (gensim run FOLDER --resume/--replay RUN_DIR, gensim interview RUN_DIR "
            f"AGENT QUESTION --scenario FOLDER, gensim rate RUN_DIR --by judge --scenario FOLDER)"))])
    spec = load_scenario(folder)
    name = None
    if (run_dir / "run.sqlite").is_file():
        store = RunStore(run_dir / "run.sqlite", readonly=True)
        try:
            name = store.meta().get("scenario")
        finally:
            store.close()
    if name is not None and spec.name != name:
        raise ConfigError([ConfigProblem("<command line>", "scenario",
                                         f"{run_dir} was recorded with scenario '{name}', not '{spec.name}'")])
    return spec, cfg.model_copy(update={"scenario_dir": str(folder)})


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.simulation.out_dir)
    d = base / f"{cfg.simulation.name}-{stamp}-seed{cfg.simulation.seed}"
    n = 1
    while d.exists():
        n += 1
        d = base / f"{cfg.simulation.name}-{stamp}-seed{cfg.simulation.seed}-{n}"
    return d


def start_fork(opts: RunOptions) -> RunOptions:
    """Create the fork's run folder (see :mod:`simulation.fork`); the returned options resume it.

    The fork repeats the interventions its parent applied from ``--from-round`` on (and those the
    parent had scheduled but not reached); a fork that is not a replay may add its own.
    """
    from dataclasses import replace

    from .fork import forked_config, make_fork

    parent = Path(opts.fork or "")
    if opts.from_round is None:
        raise ConfigError([ConfigProblem("<command line>", "--from-round", "a fork needs --from-round R")])
    if opts.agents is not None or opts.rounds is not None:
        raise ConfigError([ConfigProblem("<command line>", "--agents/--rounds", "a fork keeps its parent's population "
                                         "and rounds")])
    if opts.replay and Path(opts.replay).resolve() != parent.resolve():
        raise ConfigError([ConfigProblem("<command line>", "--replay", "a fork replays its own parent only")])
    if opts.replay:  # answered from the parent's recording: only how it executes may change
        cfg = read_run_config(parent, opts)
    else:
        cfg = forked_config(read_run_config(parent), opts.overrides, opts.seed)
    _, cfg = recorded_scenario(parent, cfg, opts.scenario)
    last = last_round(parent)
    if opts.from_round > min(last + 1, cfg.simulation.rounds):
        raise ConfigError([ConfigProblem("<command line>", "--from-round", (
            f"round {opts.from_round} is past what a fork can re-run: {parent.name} has {cfg.simulation.rounds} "
            f"rounds and its last recorded round is {last}"))])
    inherited = parent_schedule(parent, opts.from_round)
    given = schedule.from_options(opts.interventions, opts.attributes)
    if opts.replay:
        schedule.check_same(given, inherited, "a fork replaying its parent")
        plan = inherited
    else:
        plan = sorted([*inherited, *(g for g in given if g not in inherited)], key=lambda x: x.round)
    late = [x.label() for x in plan if x.round > cfg.simulation.rounds or x.round < opts.from_round]
    if late:
        raise ConfigError([ConfigProblem("<command line>", "--intervene/--set", (
            f"{late[0]} is outside the rounds the fork runs ({opts.from_round} to {cfg.simulation.rounds})"))])
    out = Path(opts.out) if opts.out else parent.parent / f"{parent.name}-fork{opts.from_round}-{time.strftime('%H%M%S')}"
    make_fork(parent, opts.from_round, out, cfg, replay=bool(opts.replay), plan=[x.to_data() for x in plan])
    return replace(opts, fork=None, replay=None, resume=str(out), overrides=[], seed=None, from_round=None,
                   interventions=[], attributes=[], created=True)


def refuse_occupied(run_dir: Path) -> None:
    """A new run's folder must not hold a run already."""
    if (run_dir / "run.sqlite").exists():
        raise ConfigError([ConfigProblem(str(run_dir), "--out", "already holds a run; use --resume or another folder")])


def last_round(run_dir: Path) -> int:
    """The last round a run checkpointed (0 when it has none)."""
    found = latest_checkpoint(run_dir)
    return found[0] if found else 0


def parent_schedule(parent: Path, from_round: int) -> list[schedule.Scheduled]:
    """What a fork of ``parent`` from ``from_round`` repeats: the interventions the parent applied from
    that round on, then those its schedule names for rounds it did not reach."""
    store = RunStore(parent / "run.sqlite", readonly=True)
    try:
        applied = schedule.recorded(store, from_round)
        planned = schedule.from_data(store.meta().get("schedule"))
    finally:
        store.close()
    reached = max([last_round(parent), *(x.round for x in applied)])
    return [*applied, *(x for x in planned if x.round > reached and x.round >= from_round)]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(RunStopped):
    """The user stopped the run (Ctrl-C): it ended after a checkpointed round and can be resumed."""

    def __init__(self, summary: dict[str, Any], run_dir: Path, round_: int, rounds: int):
        super().__init__(f"interrupted after round {round_} of {rounds} (checkpointed); to go on: "
                         f"gensim run --resume {run_dir}")
        self.summary = summary


def finished_summary(run_dir: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """A finished run's recorded summary, marked as such (None when the run has rounds left)."""
    store = RunStore(run_dir / "run.sqlite", readonly=True)
    try:
        meta = store.meta()
    finally:
        store.close()
    if not meta.get("finished") or last_round(run_dir) < cfg.simulation.rounds:
        return None
    return {**(meta.get("summary") or {}), "already_finished": (
        f"{run_dir} finished all {cfg.simulation.rounds} rounds: nothing to resume, nothing changed "
        f"(gensim run --fork {run_dir} --from-round R re-runs rounds in a new folder)")}


def validate_attributes(sim: Simulator, plan: list[schedule.Scheduled]) -> None:
    """Every ``--set`` names an agent of the run and a field its profile has, with a value of that field's type."""
    problems = []
    for x in plan:
        if x.kind != "attribute":
            continue
        if x.target not in sim.where:
            problems.append(ConfigProblem("<command line>", "--set", f"no agent '{x.target}' in this run"))
            continue
        why = schedule.attribute_problem(sim.store.profile(x.target), x.path or "", x.value)
        if why:
            problems.append(ConfigProblem("<command line>", "--set", f"{x.label().removeprefix('--set ')}: {why}"))
    if problems:
        raise ConfigError(problems)


async def run_simulation(opts: RunOptions) -> dict[str, Any]:
    """Run (or replay, resume, or fork) a simulation and return its summary.

    One process per run folder: the folder is locked while this runs. Bad input found after the
    folder was made removes it again; Ctrl-C ends the run after its round with :class:`Interrupted`.
    """
    replay_from: Path | None = None
    created = opts.created
    given = schedule.from_options(opts.interventions, opts.attributes)
    if opts.fork:
        opts = start_fork(opts)
        created = True
    if opts.resume:
        run_dir = Path(opts.resume).resolve()  # absolute: group actors on a cluster have other cwds
        cfg = read_run_config(run_dir, opts)
        lock = RunLock(run_dir, "resume").acquire()
    else:
        if opts.replay:
            replay_from = Path(opts.replay).resolve()
            cfg = read_run_config(replay_from, opts)
            if not (replay_from / "run.sqlite").is_file():
                raise ConfigError([ConfigProblem(str(replay_from), "run.sqlite", "missing: nothing to replay")])
            spec, cfg = recorded_scenario(replay_from, cfg, opts.scenario)
            cfg = recorded_rounds(replay_from, cfg)
            src = RunStore(replay_from / "run.sqlite", readonly=True)
            try:
                plan = schedule.recorded(src)
            finally:
                src.close()
            schedule.check_same(given, plan, "a replay")
        else:
            spec, cfg = prepare_config(opts)
            plan = given
        check_schedule(plan, cfg)
        run_dir = (Path(opts.out) if opts.out else default_run_dir(cfg)).resolve()
        refuse_occupied(run_dir)
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir, "replay" if replay_from else "run").acquire()
        try:
            refuse_occupied(run_dir)  # another process may have made a run there since the check above
        except ConfigError:
            lock.release()
            raise
    try:
        return await _run_locked(opts, run_dir, cfg, replay_from, plan if not opts.resume else None,
                                 given, spec if not opts.resume else None)
    except ConfigError:
        if created:  # bad input found after the folder was made: leave nothing half-made behind
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except KeyboardInterrupt:  # before the run's own handler was set (servers starting, setup), or a second Ctrl-C
        raise Interrupted({}, run_dir, last_round(run_dir), cfg.simulation.rounds) from None
    finally:
        lock.release()


async def _run_locked(opts: RunOptions, run_dir: Path, cfg: RunConfig, replay_from: Path | None,
                      plan: list[schedule.Scheduled] | None, given: list[schedule.Scheduled],
                      spec: ScenarioSpec | None) -> dict[str, Any]:
    """:func:`run_simulation` once the run folder is locked (``plan`` and ``spec`` are None on a resume)."""
    restart = False
    if opts.resume:
        spec, cfg = recorded_scenario(run_dir, cfg, opts.scenario)
        done = finished_summary(run_dir, cfg)
        if done is not None:
            return done
        store = RunStore(run_dir / "run.sqlite")
        meta = store.meta()
        rf = meta.get("replay_from")
        replay_from = Path(rf).resolve() if rf else None
        # a run recorded before schedules were kept: the command line's, as it used to be
        plan = schedule.from_data(meta["schedule"]) if "schedule" in meta else given
        try:
            schedule.check_same(given, plan, "a resume")
            check_schedule(plan, cfg)
        except ConfigError:
            store.close()
            raise
        if latest_checkpoint(run_dir) is None:  # stopped before its first checkpoint: start it again
            logger.warning("{}: no checkpoint yet (stopped during setup); running it from the start", run_dir)
            store.truncate_after(-1)
            restart = True
    else:
        assert spec is not None and plan is not None
        (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2, by_alias=True))
        store = RunStore(run_dir / "run.sqlite")
        store.set_meta(scenario=spec.name, created=time.time(), replay_from=str(replay_from) if replay_from else None,
                       seed=cfg.simulation.seed, schedule=[x.to_data() for x in plan], key_metrics=spec.key_metrics)

    services = Services(progress=opts.progress, on_line=opts.on_line)
    runtime: Runtime | None = None
    emb = None
    # the run's own log: everything at INFO, and the tracebacks the console leaves out
    log_sink = logger.add(run_dir / "run.log", level="INFO", format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}")
    try:
        replay_store = RunStore(replay_from / "run.sqlite", readonly=True) if replay_from else None
        replay_vectors = None
        if replay_store is not None:
            chat_models: list[ModelConfig] = []
            emb_models: list[ModelConfig] = []
            replay_vectors = replay_store.embeddings()
            replay_store.close()
            store.flush(list(replay_vectors.items()))  # a replay's run folder can itself be replayed
        else:
            check_adapter_setting(cfg)  # before minutes of server start
            chat_models, emb_models = services.resolve(cfg)
        emb = build_embeddings(cfg, emb_models, replay_vectors)
        runtime = make_runtime(cfg.simulation.runtime, cfg.simulation.ray_address, cfg.simulation.servers,
                               cfg.simulation.cluster_share)
        n_groups = runtime.connect()
        cfg_json = cfg.model_dump_json(by_alias=True)
        specs = [GroupSpec(i, cfg_json, [m.model_dump() for m in chat_models], [m.model_dump() for m in emb_models],
                           str(replay_from) if replay_from else None) for i in range(n_groups)]
        counts = {t: a.count for t, a in cfg.simulation.agents.items()}
        sim = Simulator(spec, cfg, run_dir, store, runtime, specs, emb, counts, progress=opts.progress)
        if replay_from is None and cfg.simulation.llm.backend != "fake":
            from .services.deploy import ModelDeployer

            sim.deployer = ModelDeployer(cfg, chat_models, services.owned, run_dir)
        elif replay_from is None:  # the fake model serves any name: an adapter only re-routes (and is recorded)
            check_adapter_setting(cfg)
        else:
            sim.replaying = True
            sim.add_hook("before_round", replayed_deployments(replay_from))
        for when, fns in opts.hooks.items():
            for fn in fns:
                sim.add_hook(when, fn)
        if plan:
            sim.add_hook("before_round", schedule.hook(plan))
        await sim.setup()
        validate_attributes(sim, plan)
        if opts.resume and not restart:
            await sim.restore()
        elif sim.round == 0:
            await sim.checkpoint()
        await sim.deploy_routed()  # the adapters the config or the checkpoint names
        if opts.on_simulator is not None:
            opts.on_simulator(sim)
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:  # the first Ctrl-C ends the run after its round; a second one at once
            sim.request_stop("interrupted (Ctrl-C)")
            print(f"\nstopping after round {sim.round + 1} (Ctrl-C again stops at once)", file=sys.stderr, flush=True)
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

        try:
            for sig in STOP_SIGNALS:  # SIGTERM (kill PID, a scheduler) stops it as Ctrl-C does
                loop.add_signal_handler(sig, on_sigint)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            summary = await sim.run()
        finally:
            try:
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        if services.start_s is not None:
            summary["server_start_s"] = services.start_s
        finished = sim.round >= cfg.simulation.rounds
        if finished:  # a stopped run may not have come to the decision yet
            _warn_unused_scope(cfg, store)
        store.set_meta(finished=finished, summary=summary)
        if sim.stop_reason and not finished:
            store.set_meta(stopped={"round": sim.round + 1, "reason": sim.stop_reason})
            raise Interrupted(summary, run_dir, sim.round, cfg.simulation.rounds)
        return summary
    finally:
        if runtime is not None:
            await runtime.close()
        if emb is not None:
            await emb.aclose()
        services.stop()
        store.close()
        logger.remove(log_sink)


def recorded_rounds(source: Path, cfg: RunConfig) -> RunConfig:
    """A replay of an interrupted run ends where its recording does (its last checkpointed round)."""
    src = RunStore(source / "run.sqlite", readonly=True)
    try:
        finished = src.meta().get("finished")
    finally:
        src.close()
    if finished:
        return cfg
    found = latest_checkpoint(source)
    last = found[0] if found else 0
    if last < 1:
        raise ConfigError([ConfigProblem(str(source), "--replay", "the run stopped before it finished a round: "
                                         "nothing to replay")])
    if last < cfg.simulation.rounds:
        logger.warning("{} stopped after round {} of {}: replaying those {} rounds", source, last,
                       cfg.simulation.rounds, last)
        cfg = cfg.model_copy(update={"simulation": cfg.simulation.model_copy(update={"rounds": last})})
    return cfg


def check_schedule(plan: list[schedule.Scheduled], cfg: RunConfig) -> None:
    """``--intervene``/``--set`` rounds must fall within the run (a later one would be dropped silently)."""
    late = sorted({x.round for x in plan if x.round > cfg.simulation.rounds})
    if late:
        raise ConfigError([ConfigProblem("<command line>", "--intervene/--set", f"round {late[0]} is after the run's "
                                         f"last round ({cfg.simulation.rounds})")])


def _warn_unused_scope(cfg: RunConfig, store: RunStore) -> None:
    """Say so when ``llm.adapter_actions`` names a decision the run never asked (a misspelt action name
    leaves the adapter answering nothing; the names are the scenario's, known only once it ran)."""
    scope = cfg.simulation.llm.adapter_actions
    if not scope:
        return
    asked = {a for (a,) in store.db.execute("SELECT DISTINCT action FROM llm_calls")}
    unused = [a for a in scope if a not in asked]
    if unused:
        logger.warning("llm.adapter_actions: no call of {} in this run, so the adapter answered none (its decisions: {})",
                       ", ".join(unused), ", ".join(sorted(asked)) or "none")


def check_adapter_setting(cfg: RunConfig) -> None:
    """``llm.adapter`` names a folder ``gensim train`` wrote (a one-line error otherwise)."""
    path = cfg.simulation.llm.adapter
    if path:
        from .training.manifest import read_manifest

        read_manifest(Path(path), "llm.adapter")


def replayed_deployments(source: Path) -> Any:
    """A before-round hook giving a replay the recorded run's model changes in the same rounds (its
    answers come from the recording; no server is touched)."""
    src = RunStore(source / "run.sqlite", readonly=True)
    try:
        recorded = [(r, t, json.loads(d)) for r, t, d in src.db.execute(
            "SELECT round, target, data FROM interventions WHERE kind = 'deploy' ORDER BY id")]
    finally:
        src.close()

    async def hook(sim: Simulator, r: int) -> None:
        for when, name, data in recorded:
            if when == r and not data.get("at_start"):
                await sim.deploy_adapter(data["path"], name, agents=data.get("agents") or None,
                                         share=data.get("share", 1.0), types=data.get("types") or None,
                                         mode=data.get("mode"))

    return hook


def format_summary(s: dict[str, Any]) -> str:
    """The run's summary for the console: the framework's counts, then the scenario's own figures
    (whatever its environment's ``summary`` returns, in its order), then times and the folder."""
    keys = ["agents", "rounds", "actions", "llm_calls", "llm_calls_from_replay", "tokens", "failed_steps"]
    tail = ["wall_s", "server_start_s", "setup_s", "run_dir"]
    lines = ["", "Summary"]
    quiet_when_zero = ("invalid_calls", "truncated_calls")
    rest = [k for k in s if k not in keys + tail and k not in ("prompt_tokens", "completion_tokens", "llm_call_errors")]
    for k in keys + rest + tail:
        if k in s and not (k in quiet_when_zero and not s[k]):
            v = s[k]
            if isinstance(v, dict):  # e.g. invalid actions per action name
                v = ", ".join(f"{name} {n}" for name, n in v.items()) or "none"
            lines.append(f"  {k.replace('_', ' '):<22} {v}")
    return "\n".join(lines)


def dump_json(s: dict[str, Any]) -> str:
    return json.dumps(s, sort_keys=True)
