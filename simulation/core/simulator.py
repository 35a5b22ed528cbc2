"""The driver's round loop: phases over agent groups, routing, metrics, checkpoints, resume, recovery."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from tqdm import tqdm

from ..config import ConfigError, ConfigProblem
from ..config.loader import apply_override
from ..config.models import ADAPTER_NAME, RunConfig
from ..llm.routing import Assignment, adapter_paths, routing_from_settings, routing_with_deployed
from ..llm.types import LLMError
from ..population import PopulationStats
from ..population.build import ProfileSource, profile_sources, profile_streams
from ..runtime.base import GroupCall, GroupLost
from ..runtime.host import GroupHost
from ..store import RunStore
from .checkpoint import (
    FILES,
    group_sizes,
    latest_checkpoint,
    read_driver_state,
    round_dir,
    write_driver_state,
)
from .checks import run_checks
from .errors import (
    EnvironmentCodeError,
    FailedStepsExceeded,
    OutageStop,
    ReplayDiverged,
    RunStopped,
    ScenarioError,
    SetupError,
    StepError,
)
from .group import action_rows
from .health import decision_health
from .phase import Phase
from .records import Action, Deployment
from .scenario import ScenarioSpec

Hook = Callable[..., Awaitable[None] | None]
CREATE_CHUNK = 5000  # agents per bulk call to a group


@dataclass
class _PhaseInput:
    """What every group got for one phase: kept for the round so a lost group can re-run it."""

    phase: Phase
    inboxes: list[dict[str, list]]


class Simulator:
    """Owns a run: builds agents over the runtime's groups, runs rounds, records and checkpoints them.

    Hooks: ``before_round(sim, r)``, ``after_round(sim, r)``, ``before_phase(sim, r, phase)``.
    """

    def __init__(self, spec: ScenarioSpec, cfg: RunConfig, run_dir: Path, store: RunStore, runtime: Any,
                 group_specs: list[Any], embeddings: Any, counts: dict[str, int] | None = None,
                 progress: bool = True):
        self.spec = spec
        self.cfg = cfg
        self.simulation = cfg.simulation
        self.run_dir = Path(run_dir)
        self.store = store
        self.runtime = runtime
        self.group_specs = group_specs
        self.embeddings = embeddings  # the driver's own (the environment's setup uses it)
        self.counts = counts or {t: a.count for t, a in self.simulation.agents.items()}
        self.progress = progress
        self.track_steps = False  # count each phase's steps without a bar (the web page's progress)
        self.phase_steps: tuple[int, int] = (0, 0)  # (done, scheduled) in the phase in progress
        self.env = spec.environment(cfg.params, self.simulation.seed)
        self.where: dict[str, int] = {}  # agent id -> group index
        self.groups: list[dict[str, Any]] = []  # where each group runs (node, pid)
        self.n_agents = 0
        self.round = 0
        self.totals: Counter[str] = Counter()
        self.failed_steps = 0
        self.recoveries = 0
        self._phase_calls = 0  # LLM calls recorded in the running phase (for its log line)
        self._imported: tuple[dict[str, ProfileSource], dict[str, list[dict[str, Any]]]] | None = None
        self.setup_s = 0.0
        self.population = PopulationStats()
        self.intervention: str | None = None
        self.hooks: dict[str, list[Hook]] = {"before_round": [], "after_round": [], "before_phase": []}
        self._world_ref: Any = None
        self._round_inputs: list[_PhaseInput] = []
        self._round_update: Any = None
        self._patches: list[tuple[str, str, Any]] = []  # attribute changes since the last checkpoint
        self._profiles: dict[str, dict[str, Any]] = {}  # profiles the checks asked for
        self.skewed: list[str] = []  # decisions where one option took over 90%
        self._stop = False
        self.stop_reason: str | None = None  # why the run was asked to stop early
        self._pause = asyncio.Event()
        self._pause.set()
        # which model answers which agent; adapters deployed by name -> folder
        self.routing = routing_from_settings(self.simulation.llm, self.simulation.seed)
        self.adapters: dict[str, str] = adapter_paths(self.simulation.llm)
        self.deployer: Any = None  # a ModelDeployer (live runs); a replay or the fake model only re-routes
        self.replaying = False  # answered from a recorded run (set by the runner)
        self.deployments: list[Deployment] = []
        self._deployed: list[Assignment] = []  # assignments made while running (the config's come first)
        self._round_lock = asyncio.Lock()
        self._round_task: asyncio.Task | None = None

    # -- control --
    def add_hook(self, when: str, fn: Hook) -> None:
        """Call ``fn(sim, ...)`` at ``when`` (``before_round``, ``after_round``, ``before_phase``...)."""
        self.hooks[when].append(fn)

    def request_stop(self, reason: str | None = None) -> None:
        """Stop after the current round (its checkpoint is still written).

        With a ``reason`` (Ctrl-C, the web interface) the run records it and ends as interrupted; without
        one (a hook's own stop) it returns its summary as before.
        """
        self._stop = True
        self.stop_reason = reason

    def pause(self) -> None:
        """Hold the run before its next round until :meth:`resume_running`."""
        self._pause.clear()

    @property
    def pause_requested(self) -> bool:
        """:meth:`pause` was called and :meth:`resume_running` not since."""
        return not self._pause.is_set()

    @property
    def in_round(self) -> bool:
        """A round is in progress (a pause or a deployment waits for it to end)."""
        return self._round_lock.locked()

    def resume_running(self) -> None:
        """Let a paused run go on."""
        self._pause.set()

    def set_intervention(self, text: str | None) -> None:
        """A global message that reaches every agent's prompts from the next round on (None clears it)."""
        self.intervention = text or None
        self.store.add_intervention(self.round + 1, "global", "*", {"text": self.intervention})

    async def set_attribute(self, agent_id: str, path: str, value: Any) -> None:
        """Change one agent's profile field (dotted ``path``) from the next round on; recorded."""
        g = self._group_of(agent_id)
        self._profiles.pop(agent_id, None)
        await self.runtime.call(g, GroupHost.set_attribute, agent_id, path, value)
        self._patches.append((agent_id, path, value))  # a group rebuilt from the checkpoint gets them again
        self.store.add_intervention(self.round + 1, "attribute", agent_id, {"path": path, "value": value})

    async def interview(self, agent_id: str, question: str) -> str:
        """Ask an agent a question; it answers in character and its memory is left as it was."""
        g = self._group_of(agent_id)
        answer, rows = await self.runtime.call(g, GroupHost.interview, agent_id, question, self.round)
        self.store.add_rows((), rows)
        self.store.add_intervention(self.round, "interview", agent_id, {"question": question, "answer": answer})
        self.store.flush()
        return answer

    async def agent_state(self, agent_id: str) -> dict[str, Any]:
        """An agent's profile, state and memory as plain data."""
        return await self.runtime.call(self._group_of(agent_id), GroupHost.agent_state, agent_id)

    async def deploy_adapter(self, path: str | Path, name: str | None = None, agents: list[str] | None = None,
                             share: float = 1.0, types: list[str] | None = None, mode: str | None = None) -> Deployment:
        """Put a trained adapter into the running simulation from the next round on.

        ``agents`` (ids), else a seeded ``share`` of the agents of ``types`` (all types by default) use
        it; the others keep their model, as the control group. ``mode`` is lora, merge or auto
        (``llm.deploy_mode``). Waits for the round in progress to end; the swap is recorded.
        """
        if self._round_task is not None and asyncio.current_task() is not self._round_task:
            async with self._round_lock:
                return await self._deploy(Path(path), name, agents, share, types, mode)
        return await self._deploy(Path(path), name, agents, share, types, mode)

    async def _deploy(self, path: Path, name: str | None, agents: list[str] | None, share: float,
                      types: list[str] | None, mode: str | None) -> Deployment:
        name = name or path.name
        if not ADAPTER_NAME.fullmatch(name):
            raise ValueError(f"adapter name {name!r}: letters, digits, '.', '_' and '-' only")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {share}")
        unknown = [a for a in agents or () if a not in self.where]
        if unknown:
            raise KeyError(f"no agent {unknown[0]!r} in this run")
        bad_types = [t for t in types or () if t not in self.counts]
        if bad_types:
            raise KeyError(f"no agent type {bad_types[0]!r} in this run")
        t0 = time.perf_counter()
        if self.deployer is not None:
            mode = self.deployer.resolve_mode(mode or self.simulation.llm.deploy_mode)
            await self._put_on_servers({name: str(path)}, mode)  # a failure leaves the routing as it was
        mode = mode or ("fake" if self.simulation.llm.backend == "fake" else "replay")
        self._deployed.append(self.routing.assign(name, share, types, agents))
        self.adapters[name] = str(path)
        await self._route()
        dep = Deployment(self.round + 1, name, str(path), mode, round(time.perf_counter() - t0, 3),
                         share, tuple(types or ()), tuple(agents or ()))
        self._record(dep, {"share": share, "types": list(dep.types), "agents": list(dep.agents)})
        logger.info("deployed adapter {} ({} mode) in {:.1f}s, from round {}", name, dep.mode, dep.seconds, dep.round)
        return dep

    async def deploy_routed(self) -> None:
        """Serve the adapters the routing names, and give the groups the routing.

        The routing comes from the config or a resumed checkpoint; every model an agent may ask for
        must be served.
        """
        route_only = self.deployer is None and self.simulation.llm.backend == "fake" and not self.replaying
        needed = ([n for n in self.routing.used_names() if n in self.adapters]
                  if self.deployer is not None or route_only else [])
        t0 = time.perf_counter()
        if self.deployer is not None and needed:
            mode = self.deployer.resolve_mode(self.simulation.llm.deploy_mode)
            await self._put_on_servers({n: self.adapters[n] for n in needed}, mode)
        else:  # the fake model answers any name; a replay answers from its recording
            mode = "fake" if route_only else "replay"
        await self._route()
        seconds = round(time.perf_counter() - t0, 3)
        for n in needed:
            self._record(Deployment(self.round + 1, n, self.adapters[n], mode, seconds), {"at_start": True})

    async def _put_on_servers(self, adapters: dict[str, str], mode: str) -> None:
        """Make each adapter (name -> folder) servable; the servers' work runs off the event loop."""
        for name, path in adapters.items():
            self.deployer.check_adapter(Path(path))
            await asyncio.to_thread(self.deployer.deploy, Path(path), name, mode)

    async def _route(self) -> None:
        """Give the groups the endpoints and routing, and stop servers no agent uses any more.

        Every model an agent may ask for must be served (a replay touches no server).
        """
        if self.deployer is not None:
            self._check_served()
        await self._push_models()
        if self.deployer is not None and await asyncio.to_thread(self.deployer.retire, self.routing):
            await self._push_models()

    def _record(self, dep: Deployment, extra: dict[str, Any]) -> None:
        self.deployments.append(dep)
        self.store.add_intervention(dep.round, "deploy", dep.name, {"path": dep.path, "mode": dep.mode,
                                                                    "seconds": dep.seconds, **extra})
        self.store.flush()

    def _check_served(self) -> None:
        served = {n for m in self.deployer.models for n in (m.config_name, m.model_name, *m.adapters)}
        missing = sorted(self.routing.used_names() - served)
        if missing:
            raise ConfigError([ConfigProblem("llm", "model", f"no chat endpoint serves {', '.join(map(repr, missing))} "
                                             f"(served: {', '.join(sorted(served)) or 'none'})")])

    async def _push_models(self) -> None:
        """Give every group the current endpoints and routing (and keep them for rebuilt groups)."""
        if self.deployer is not None:
            for s in self.group_specs:
                s.chat_models = [m.model_dump() for m in self.deployer.models]
        await self.runtime.gather([GroupCall(g, GroupHost.set_models, (self.group_specs[g].chat_models,
                                                                        self.routing.to_data()))
                                   for g in range(self.runtime.n_groups)])

    def _group_of(self, agent_id: str) -> int:
        if agent_id not in self.where:
            raise KeyError(f"no agent '{agent_id}' in this run")
        return self.where[agent_id]

    async def _run_hooks(self, when: str, *args: Any) -> None:
        for hook in self.hooks[when]:
            out = hook(self, *args)
            if asyncio.iscoroutine(out):
                await out

    # -- setup --
    def _imported_profiles(self) -> tuple[dict[str, ProfileSource], dict[str, list[dict[str, Any]]]]:
        """Where each type's profiles come from, and the imported ones it takes.

        The files are read once per run, for setup's report, ``profiles()`` and group rebuilds alike.
        """
        if self._imported is None:
            self._imported = profile_sources(self.spec, self.counts, self.cfg.profiles, self.simulation.seed)
        return self._imported

    def _streams(self) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        return profile_streams(self.spec, self.counts, self._imported_profiles()[1], self.simulation.seed,
                               self.simulation.id_digits)

    async def setup(self) -> None:
        """Create every agent (in bulk, spread over the groups), then the environment and its world."""
        t0 = time.perf_counter()
        await self.runtime.start(self.group_specs)
        n = self.runtime.n_groups
        pending: list[list[tuple[str, list]]] = [[] for _ in range(n)]
        size = 0
        i = 0
        sources, _ = self._imported_profiles()
        for agent_type, stream in self._streams().items():
            rows = []
            for aid, prof in stream:
                g = i % n  # round robin: every type on every group, so interactions cross groups
                i += 1
                self.where[aid] = g
                if not pending[g] or pending[g][-1][0] != agent_type:
                    pending[g].append((agent_type, []))
                pending[g][-1][1].append((aid, prof))
                text = json.dumps(prof, ensure_ascii=False)
                rows.append((aid, agent_type, text, g))
                self.population.add(agent_type, prof, text)
                size += 1
                if size >= CREATE_CHUNK * n:
                    await self._send_agents(pending)
                    self.store.add_agents(rows)
                    pending, size, rows = [[] for _ in range(n)], 0, []
            self.store.add_agents(rows)
        await self._send_agents(pending)
        self.n_agents = i
        try:
            await self.env.setup(self)
            world = self.env.world()
        except (ConfigError, RunStopped, LLMError):
            raise
        except Exception as e:  # the scenario's own code: a bug to fix, named where it is
            logger.bind(run_log_only=True).opt(exception=e).error("the scenario's setup raised")
            raise self._stopped(SetupError(e, self.run_dir / "run.log")) from None
        # the setup's vectors are recorded now; the driver needs them no more
        self.store.flush(self.embeddings.cache.drain_new())
        self.embeddings.cache.vectors.clear()
        self._world_ref = self.runtime.share(world)
        await self.runtime.broadcast(GroupHost.set_world, self._world_ref)
        self.groups = await self.runtime.broadcast(GroupHost.stats)
        self.store.set_meta(groups=[{k: s[k] for k in ("group", "node", "host", "pid", "agents")} for s in self.groups])
        self.store.set_meta(population=self.population.summary())
        self.store.set_meta(profile_sources=[asdict(s) for s in sources.values()])
        # printed with or without progress bars: what the run is made of belongs with its results
        for line in [*(s.line() for s in sources.values()), *self.population.lines()]:
            print(f"population  {line}", flush=True)
            logger.bind(run_log_only=True).info("population  {}", line)
        self.setup_s = round(time.perf_counter() - t0, 3)
        logger.info("created {} agents on {} group(s) in {:.2f}s", i, n, self.setup_s)

    async def _send_agents(self, pending: list[list[tuple[str, list]]], only: int | None = None) -> None:
        calls = [GroupCall(g, GroupHost.add_agents, (t, items)) for g, batches in enumerate(pending) for t, items in batches
                 if items and (only is None or g == only)]
        await self.runtime.gather(calls)

    def profiles(self, agent_type: str) -> list[tuple[str, dict[str, Any]]]:
        """Every profile of a type, generated again (the driver keeps none: groups hold the agents)."""
        return list(self._streams().get(agent_type, iter(())))

    # -- the loop --
    async def run(self, until_round: int | None = None) -> dict[str, Any]:
        """Run rounds up to ``until_round`` (default: the configured rounds); returns the summary."""
        last = until_round or self.simulation.rounds
        t0 = time.perf_counter()
        self._round_task = asyncio.current_task()
        while self.round < last and not self._stop:
            await self._pause.wait()
            async with self._round_lock:  # a deployment from elsewhere waits for the round to end
                await self.run_round(self.round + 1)
        self.totals["wall_s"] += round(time.perf_counter() - t0, 3)
        return self.summary()

    async def run_round(self, r: int) -> dict[str, float]:
        """Run round ``r``: its phases, checks, metrics and checkpoint; returns its metrics."""
        t_round = time.perf_counter()
        await self._run_hooks("before_round", r)
        self._round_update = self._env("world_update", r, None, r)
        self._round_inputs = []
        try:
            await self.runtime.broadcast(GroupHost.begin_round, self._round_update, self.intervention)
        except GroupLost as e:  # died between rounds: rebuild it from the checkpoint just written
            logger.warning("{}; rebuilding it", e)
            await self._rebuild_group(e.index, r)
            await self.runtime.call(e.index, GroupHost.cold)
            self.recoveries += 1
        except Exception as e:  # the world's update(data), the scenario's code, raised in a group
            logger.bind(run_log_only=True).opt(exception=e).error("the world's update raised in round {}", r)
            raise self._stopped(EnvironmentCodeError("world update", r, None, e, self.run_dir / "run.log")) from None
        bar = tqdm(total=0, desc=f"round {r}/{self.simulation.rounds}", unit="step", disable=not self.progress,
                   dynamic_ncols=True, leave=True)
        inboxes: dict[str, list] = {}
        round_actions = round_failed = round_steps = 0
        round_checks: Counter[tuple[str, str]] = Counter()  # (check, "covered" | "failed") -> actions
        for phase in self._env("phases", r, None, r):
            await self._run_hooks("before_phase", r, phase)
            bar.set_postfix_str(phase.name)
            per_group = self._split(inboxes)
            self._round_inputs.append(_PhaseInput(phase, per_group))
            counting = self.progress or self.track_steps
            self.phase_steps = (0, 0)
            if counting:
                try:
                    scheduled = sum(await self.runtime.gather([GroupCall(g, GroupHost.scheduled, (phase, per_group[g], r))
                                                               for g in range(self.runtime.n_groups)]))
                    bar.total += scheduled
                    bar.refresh()
                    self.phase_steps = (0, scheduled)
                except GroupLost:  # the phase itself will find it lost and recover it
                    pass

            def stepped(n: int) -> None:
                bar.update(n)
                self.phase_steps = (self.phase_steps[0] + n, self.phase_steps[1])

            t_phase = time.perf_counter()
            self._phase_calls = 0
            collector = asyncio.ensure_future(self._collect_rows())
            try:
                outs = await self.runtime.run_phase(phase, r, per_group, stepped if counting else None)
            finally:
                collector.cancel()
                await asyncio.gather(collector, return_exceptions=True)
            for g, out in enumerate(outs):
                if isinstance(out, Exception):
                    outs[g] = await self._recover(g, r, out)
            messages, actions = [], []
            for out in outs:
                messages += out.messages
                actions += out.actions
                round_failed += out.failed
                round_steps += out.steps
                self._phase_calls += len(out.llm_rows)
                self.store.add_rows((), out.llm_rows)
                self.store.flush(out.embeddings)
            self._stop_if_broken(r, phase, outs)
            # completion order varies with timing and grouping; sender order does not (stable sort)
            messages.sort(key=lambda m: m.sender)
            actions.sort(key=lambda a: a.agent_id)
            round_actions += len(actions)
            self.store.add_rows(action_rows(r, phase.name, actions), ())
            self._env("observe", r, phase.name, phase, r, actions, messages)
            self._check(r, phase, actions, round_checks)
            inboxes = self._env("route", r, phase.name, phase, messages)
            logger.info("round {} phase {}: {} steps, {} actions, {} LLM calls in {:.2f}s", r, phase.name,
                        sum(o.steps for o in outs), len(actions), self._phase_calls,
                        time.perf_counter() - t_phase)
        bar.close()
        share = round_failed / round_steps if round_steps else 0.0
        if share > self.simulation.max_failed_step_share:
            raise self._stopped(FailedStepsExceeded(
                f"round {r}: {round_failed} of {round_steps} steps failed on the model's side ({share:.1%}, "
                f"max_failed_step_share is {self.simulation.max_failed_step_share:.1%}); "
                f"the round was not checkpointed: fix the endpoints, then gensim run --resume {self.run_dir}"))
        self.failed_steps += round_failed
        metrics = self._env("metrics", r, None, r)
        metrics["actions"] = round_actions
        metrics["failed_steps"] = self.failed_steps
        for c in self.spec.checks:
            covered = round_checks[(c.name, "covered")]
            metrics[f"check.{c.name}.covered"] = covered
            metrics[f"check.{c.name}.fail_rate"] = round(round_checks[(c.name, "failed")] / covered, 6) if covered else 0.0
        health = decision_health(self.store, r)
        metrics.update(health.metrics)
        self._warn_skewed(r, health.skewed)
        self.store.set_metrics(r, metrics)
        self.store.set_round_cost(r, time.perf_counter() - t_round)
        self.totals["actions"] += round_actions
        self.round = r
        if r % self.simulation.checkpoint_every == 0 or r == self.simulation.rounds:
            await self.checkpoint()
        await self._run_hooks("after_round", r)
        return metrics

    def _env(self, method: str, r: int, phase: str | None, *args: Any) -> Any:
        """Call the environment's ``method``; a bug there stops the run like one in an agent step."""
        try:
            return getattr(self.env, method)(*args)
        except (ConfigError, RunStopped, LLMError):
            raise
        except Exception as e:
            logger.bind(run_log_only=True).opt(exception=e).error("the environment's {} raised in round {}", method, r)
            raise self._stopped(EnvironmentCodeError(method, r, phase, e, self.run_dir / "run.log")) from None

    def _check(self, r: int, phase: Phase, actions: list[Action], counts: Counter) -> None:
        """Run the scenario's checks over the phase's actions and store every verdict."""
        if not self.spec.checks:
            return
        self.store.flush()
        try:
            results = run_checks(self.spec.checks, actions, r, phase.name, self.env, self._profile_of,
                                 lambda agent, name: self._history(agent, name, (r, phase.name)))
        except Exception as e:  # a check's own bug: stop like any scenario bug, with its traceback
            raise self._stopped(ScenarioError(r, [StepError.from_exception("<checks>", phase.name, e)],
                                              self.run_dir / "run.log")) from e
        for res in results:
            counts[(res.check, "covered")] += 1
            counts[(res.check, "failed")] += not res.ok
        self.store.add_check_results(r, phase.name, results)

    def _profile_of(self, agent_id: str) -> dict[str, Any]:
        """An agent's profile as it is now (attribute interventions applied), from the run store."""
        prof = self._profiles.get(agent_id)
        if prof is None:
            if len(self._profiles) > 50_000:
                self._profiles.clear()
            prof = self.store.profile(agent_id)
            for path, value in self.store.attribute_changes(agent_id):
                apply_override(prof, path, value)
            self._profiles[agent_id] = prof
        return prof

    def _history(self, agent_id: str, action: str, skip: tuple[int, str]) -> list[Action]:
        return [Action(agent_id, a, bool(v), json.loads(d), seq or 0, tuple(json.loads(c)) if c else ())
                for _r, _p, a, v, d, seq, c in self.store.agent_actions(agent_id, action, skip)]

    def _warn_skewed(self, r: int, skewed: list[str]) -> None:
        for line in skewed:
            logger.warning("round {}: {}", r, line)
            if line not in self.skewed:
                self.skewed.append(line)

    def _stop_if_broken(self, r: int, phase: Phase, outs: list[Any]) -> None:
        """After a phase: a step whose own code raised, or an endpoint outage, stops the run.

        What was recorded stays; the round is not checkpointed, so a resume redoes it.
        """
        errors = [e for out in outs for e in out.errors]
        misses = [e for e in errors if e.replay_miss]
        if misses and len(misses) == len(errors):
            raise self._stopped(ReplayDiverged(r, misses))
        errors = [e for e in errors if not e.replay_miss]
        if errors:
            for e in errors:
                logger.bind(run_log_only=True).error("agent {} raised in round {} phase {}:\n{}", e.agent_id, r,
                                                     e.phase, e.traceback)
            raise self._stopped(ScenarioError(r, errors, self.run_dir / "run.log"))
        outage = next((out.outage for out in outs if out.outage), None)
        if outage:
            raise self._stopped(OutageStop(
                f"round {r} phase {phase.name}: {outage}; the round was not checkpointed: "
                f"once an endpoint is back, gensim run --resume {self.run_dir}"))

    def _stopped(self, e: RunStopped) -> RunStopped:
        self.store.flush()
        self.store.set_meta(stopped={"round": self.round + 1, "reason": str(e)})
        return e

    async def _collect_rows(self, every_s: float = 1.0) -> None:
        """While a phase runs, move the groups' LLM call rows into the store every ``every_s``."""
        while True:
            await asyncio.sleep(every_s)
            try:
                drained = await self.runtime.broadcast(GroupHost.drain)
            except GroupLost:  # the phase will report it and recover the group
                continue
            for rows, vectors in drained:
                self._phase_calls += len(rows)
                self.store.add_rows((), rows)
                self.store.flush(vectors)

    def _split(self, inboxes: dict[str, list]) -> list[dict[str, list]]:
        out: list[dict[str, list]] = [{} for _ in range(self.runtime.n_groups)]
        for aid, msgs in inboxes.items():
            g = self.where.get(aid)
            if g is not None:
                out[g][aid] = msgs
        return out

    # -- recovery --
    async def _recover(self, g: int, r: int, lost: Exception, attempts: int = 3) -> Any:
        """Rebuild a lost group from the last checkpoint and re-run its part of this round.

        Phases it already finished are re-run with the inboxes it had and its recorded LLM answers
        (their effects were applied once already, so their outputs are dropped); the phase it died in
        is then run for real, still answered from the recording as far as it got, so no call is
        made or recorded twice.
        """
        for attempt in range(1, attempts + 1):
            logger.warning("{}; rebuilding it (attempt {}/{})", lost, attempt, attempts)
            try:
                await self._rebuild_group(g, r)
                cur = self._round_inputs[-1]
                out = await self.runtime.call(g, GroupHost.run_phase, cur.phase, r, cur.inboxes[g])
                await self.runtime.call(g, GroupHost.cold)
                self.recoveries += 1
                self.groups[g] = await self.runtime.call(g, GroupHost.stats)
                self.store.set_meta(recoveries=self.recoveries)
                return out
            except Exception as e:  # noqa: BLE001 - any failure of the rebuilt group: try again
                lost = e
        raise RuntimeError(f"agent group {g} could not be recovered: {lost}")

    async def _rebuild_group(self, g: int, r: int) -> None:
        await self.runtime.replace(g, self.group_specs[g])
        pending: list[list[tuple[str, list]]] = [[] for _ in range(self.runtime.n_groups)]
        for agent_type, stream in self._streams().items():
            items = [(aid, prof) for aid, prof in stream if self.where.get(aid) == g]
            if items:
                pending[g].append((agent_type, items))
        await self._send_agents(pending, only=g)
        await self.runtime.call(g, GroupHost.set_world, self._world_ref)
        found = latest_checkpoint(self.run_dir)
        if found is None or found[0] != r - 1:
            raise RuntimeError(f"group {g} died in round {r} but the last checkpoint is "
                               f"{'missing' if found is None else f'round {found[0]}'}: it cannot be rebuilt")
        await self.runtime.call(g, GroupHost.restore, str(found[1]))
        await self.runtime.call(g, GroupHost.set_models, self.group_specs[g].chat_models, self.routing.to_data())
        for agent, path, value in self._patches:
            if self.where.get(agent) == g:
                await self.runtime.call(g, GroupHost.set_attribute, agent, path, value)
        self.store.flush()
        await self.runtime.call(g, GroupHost.warm, str(self.store.path), r)
        await self.runtime.call(g, GroupHost.begin_round, self._round_update, self.intervention)
        for done in self._round_inputs[:-1]:
            await self.runtime.call(g, GroupHost.run_phase, done.phase, r, done.inboxes[g])

    # -- checkpoints --
    def state(self) -> dict[str, Any]:
        """The driver's checkpoint state."""
        return {"round": self.round, "env": self.env.get_state(), "totals": dict(self.totals),
                "failed_steps": self.failed_steps, "intervention": self.intervention,
                "groups": self.runtime.n_groups, "agents": self.n_agents,
                "deployed": [asdict(a) for a in self._deployed], "adapters": dict(self.adapters)}

    async def checkpoint(self) -> Path:
        """Every group writes its agents in parallel; the driver's file, written last, completes it."""
        self.store.flush()
        d = round_dir(self.run_dir, self.round)
        d.mkdir(parents=True, exist_ok=True)
        await self.runtime.broadcast(GroupHost.checkpoint, str(d))
        write_driver_state(d, {**self.state(), FILES: group_sizes(d)})
        self._patches = []
        return d

    async def restore(self) -> int:
        """Load the latest checkpoint and forget whatever was recorded after it."""
        found = latest_checkpoint(self.run_dir)
        if found is None:
            raise FileNotFoundError(f"{self.run_dir}: no checkpoint to resume from")
        r, d = found
        data = read_driver_state(d)
        self.env.set_state(data["env"])
        self.totals = Counter(data["totals"])
        self.failed_steps = data["failed_steps"]
        self.intervention = data.get("intervention")
        # the config's routing (a fork's may name a new adapter), then what was deployed while running
        deployed = data.get("deployed") or []
        self.routing = routing_with_deployed(self.simulation.llm, self.simulation.seed, deployed)
        self._deployed = self.routing.assignments[len(self.routing.assignments) - len(deployed):]
        self.adapters.update(data.get("adapters") or {})
        restored = await self.runtime.broadcast(GroupHost.restore, str(d))
        if sum(restored) != self.n_agents:
            raise RuntimeError(f"{d}: checkpoint holds {sum(restored)} of {self.n_agents} agents")
        self.round = r
        self.store.truncate_after(r)
        logger.info("resumed {} at round {}", self.run_dir, r)
        return r

    def summary(self) -> dict[str, Any]:
        """The run's summary: counts, the scenario's figures, invalid actions and calls, times."""
        out: dict[str, Any] = {"agents": self.n_agents, "rounds": self.round, "actions": self.totals["actions"],
                               "failed_steps": self.failed_steps}
        if self.recoveries:
            out["recovered_groups"] = self.recoveries
        out.update(self._env("summary", self.round, None))
        out["invalid_actions"] = self.store.invalid_actions()
        if self.simulation.llm.backend == "fake":
            out["llm_backend"] = "fake (in-process; the answers mean nothing)"
        if self.skewed:
            out["skewed_decisions"] = self.skewed
        out.update(self.store.llm_totals())
        if self.deployments:
            out["deployments"] = [f"{d.name} ({d.mode}, {d.seconds:.1f}s, from round {d.round})" for d in self.deployments]
        out["setup_s"] = self.setup_s
        out["wall_s"] = self.totals.get("wall_s", 0.0)
        out["run_dir"] = str(self.run_dir)
        return out
