"""The round loop: activation, phases, routing, metrics, checkpoints, resume, hooks, pause/stop."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loguru import logger
from tqdm import tqdm

from ..config.models import RunConfig
from ..memory.tokens import TokenCounter, default_token_counter
from ..population import build_profiles
from ..store import RunStore
from .checkpoint import latest_checkpoint, read_checkpoint, write_checkpoint
from .context import GroupServices
from .group import AgentGroup, PhaseResult, action_rows
from .scenario import ScenarioSpec

Hook = Callable[["Simulator", int], Awaitable[None] | None]


class Simulator:
    """Owns a run: builds agents and environment, runs rounds, records and checkpoints them."""

    def __init__(self, spec: ScenarioSpec, cfg: RunConfig, run_dir: Path, store: RunStore, llm_client: Any,
                 embeddings: Any, counts: dict[str, int] | None = None, progress: bool = True,
                 tokens: TokenCounter | None = None):
        self.spec = spec
        self.cfg = cfg
        self.sim = cfg.simulation
        self.run_dir = Path(run_dir)
        self.store = store
        self.llm_client = llm_client
        self.embeddings = embeddings
        self.counts = counts or {t: a.count for t, a in self.sim.agents.items()}
        self.progress = progress
        self.env = spec.environment(cfg.params, self.sim.seed)
        self.services = GroupServices(llm_client=llm_client, embeddings=embeddings, llm_settings=self.sim.llm,
                                      world=None, tokens=tokens or default_token_counter(), seed=self.sim.seed,
                                      prompts_dir=spec.prompts_dir)
        self.group = AgentGroup(self.services, cfg.memory, self.sim.concurrency)
        self.round = 0
        self.totals: Counter[str] = Counter()
        self.failed_steps = 0
        self.hooks: dict[str, list[Hook]] = {"before_round": [], "after_round": []}
        self._stop = False
        self._pause = asyncio.Event()
        self._pause.set()

    # -- control --
    def add_hook(self, when: str, fn: Hook) -> None:
        self.hooks[when].append(fn)

    def request_stop(self) -> None:
        """Stop after the current round (its checkpoint is still written)."""
        self._stop = True

    def pause(self) -> None:
        self._pause.clear()

    def resume_running(self) -> None:
        self._pause.set()

    def set_intervention(self, text: str | None) -> None:
        """A global message that reaches every agent's next prompts (None clears it)."""
        self.services.intervention = text or None
        self.store.add_intervention(self.round + 1, "global", "*", {"text": text})

    # -- setup --
    async def setup(self) -> None:
        t0 = time.perf_counter()
        streams = build_profiles(self.spec, self.counts, self.cfg.profiles, self.sim.seed)
        rows = []
        for agent_type, stream in streams.items():
            cls = self.spec.agent_classes[agent_type]

            def tee(stream=stream, agent_type=agent_type):
                for aid, prof in stream:
                    rows.append((aid, agent_type, json.dumps(prof, ensure_ascii=False)))
                    yield aid, prof

            self.group.add_agents(cls, tee())
        self.store.add_agents(rows)
        await self.env.setup(self)
        self.services.world = self.env.world()
        logger.info("created {} agents in {:.2f}s", len(self.group.agents), time.perf_counter() - t0)

    def profiles(self, agent_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [(a.id, a.profile) for a in self.group.by_type.get(agent_type, [])]

    # -- the loop --
    def active_agents(self, round_: int) -> set[str] | None:
        act = self.sim.activation
        if act.mode == "all":
            return None
        return {aid for aid in self.group.agents
                if random.Random(f"{self.sim.seed}:{aid}:{round_}:activate").random() < act.probability}

    async def run(self, until_round: int | None = None) -> dict[str, Any]:
        last = until_round or self.sim.rounds
        t0 = time.perf_counter()
        while self.round < last and not self._stop:
            await self._pause.wait()
            await self.run_round(self.round + 1)
        self.totals["wall_s"] = round(time.perf_counter() - t0, 3)
        return self.summary()

    async def run_round(self, r: int) -> dict[str, float]:
        for hook in self.hooks["before_round"]:
            out = hook(self, r)
            if asyncio.iscoroutine(out):
                await out
        active = self.active_agents(r)
        phases = self.env.phases(r)
        bar = tqdm(total=0, desc=f"round {r}/{self.sim.rounds}", unit="step", disable=not self.progress,
                   dynamic_ncols=True, leave=True)
        inboxes: dict[str, list] = {}
        round_actions = 0
        for phase in phases:
            bar.set_postfix_str(phase.name)
            n = len(self.group.scheduled(phase, inboxes, active))
            bar.total += n
            bar.refresh()
            res: PhaseResult = await self.group.run_phase(phase, r, inboxes, active, bar.update)
            self.failed_steps += res.failed
            # completion order varies with timing; sender order does not (stable: keeps each sender's order)
            res.messages.sort(key=lambda m: m["from"])
            res.actions.sort(key=lambda a: a[0])
            round_actions += len(res.actions)
            self.store.add_rows(action_rows(r, phase.name, res.actions), ())
            self.env.observe(phase, r, res.actions, res.messages)
            inboxes = self.env.route(phase, res.messages)
            self.store.flush(self.embeddings.cache.drain_new() if hasattr(self.embeddings, "cache") else None)
        bar.close()
        metrics = self.env.metrics(r)
        metrics["actions"] = round_actions
        metrics["failed_steps"] = self.failed_steps
        self.store.set_metrics(r, metrics)
        self.totals["actions"] += round_actions
        self.round = r
        if r % self.sim.checkpoint_every == 0 or r == self.sim.rounds:
            self.checkpoint()
        for hook in self.hooks["after_round"]:
            out = hook(self, r)
            if asyncio.iscoroutine(out):
                await out
        return metrics

    # -- checkpoints --
    def state(self) -> dict[str, Any]:
        return {"round": self.round, "agents": self.group.get_states(), "env": self.env.get_state(),
                "totals": dict(self.totals), "failed_steps": self.failed_steps,
                "intervention": self.services.intervention}

    def checkpoint(self) -> Path:
        self.store.flush()
        return write_checkpoint(self.run_dir, self.round, self.state())

    def restore(self) -> int:
        """Load the latest checkpoint and forget whatever was recorded after it."""
        found = latest_checkpoint(self.run_dir)
        if found is None:
            raise FileNotFoundError(f"{self.run_dir}: no checkpoint to resume from")
        r, path = found
        data = read_checkpoint(path)
        self.group.set_states(data["agents"])
        self.env.set_state(data["env"])
        self.totals = Counter(data["totals"])
        self.failed_steps = data["failed_steps"]
        self.services.intervention = data.get("intervention")
        self.round = r
        self.store.truncate_after(r)
        logger.info("resumed {} at round {}", self.run_dir, r)
        return r

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agents": len(self.group.agents), "rounds": self.round,
                               "actions": self.totals["actions"], "failed_steps": self.failed_steps}
        out.update(self.env.summary())
        out.update(self.store.llm_totals())
        out["wall_s"] = self.totals.get("wall_s", 0.0)
        out["run_dir"] = str(self.run_dir)
        return out
