"""A group host: one agent server's worth of agents, with its own clients, in any process.

The local runtime keeps hosts in the driver's process; the Ray runtime puts each in an actor. A host
is built from a :class:`GroupSpec` (plain data), so it can start anywhere the scenario folder and
the endpoints can be reached.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.models import ModelConfig, RunConfig
from ..core.checkpoint import read_msgpack, write_msgpack
from ..core.context import GroupServices, StepContext
from ..core.errors import StepError
from ..core.group import AgentGroup, active_set
from ..core.phase import Phase
from ..core.records import Message
from ..core.scenario import load_scenario
from ..llm import ResponseCache
from ..llm.routing import ModelRouting, routing_from_settings
from ..memory.tokens import token_counter_for
from ..store import RunStore
from .clients import build_chat_client, build_embeddings, warm_embeddings


@dataclass
class GroupSpec:
    """How to build a group host: plain data, so it travels to any process."""

    index: int
    run_config: str  # RunConfig as JSON
    chat_models: list[dict[str, Any]] = field(default_factory=list)
    emb_models: list[dict[str, Any]] = field(default_factory=list)
    replay_from: str | None = None  # a recorded run folder: answer from its run store, call nothing


@dataclass
class PhaseOutput:
    """What one group produced in one phase; the driver applies it when every group is done."""

    messages: list[Message]
    actions: list[tuple]
    steps: int
    failed: int
    llm_rows: list[tuple]
    embeddings: list[tuple[str, bytes]]
    errors: list[StepError] = field(default_factory=list)
    outage: str | None = None


class CallBuffer:
    """Collects LLM call rows until the phase's output is handed to the driver."""

    __slots__ = ("rows", "total")

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.total = 0

    def add_llm_call(self, row: tuple) -> None:
        self.rows.append(row)
        self.total += 1

    def drain(self) -> list[tuple]:
        out, self.rows = self.rows, []
        return out


def interned(value: Any) -> Any:
    """The same value with its short strings interned (dict keys included)."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= 64 else value
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    return value


def group_file(round_dir: Path, index: int) -> Path:
    return round_dir / f"group_{index:04d}.msgpack"


class GroupHost:
    """Hosts agents of every type for one slot; runs phases; checkpoints its own agents."""

    def __init__(self, gspec: GroupSpec):
        self.gspec = gspec
        self.index = gspec.index
        self.cfg = RunConfig.model_validate_json(gspec.run_config)
        self.simulation = self.cfg.simulation
        self.spec = load_scenario(Path(self.cfg.scenario_dir))
        self.hostname = socket.gethostname()
        self.calls = CallBuffer()
        chat = [ModelConfig.model_validate(m) for m in gspec.chat_models]
        emb = [ModelConfig.model_validate(m) for m in gspec.emb_models]
        replay_calls = replay_vecs = None
        if gspec.replay_from:
            src = RunStore(Path(gspec.replay_from) / "run.sqlite", readonly=True)
            try:
                replay_calls = ResponseCache(src.response_cache(), source=src.path)
                replay_vecs = src.embeddings()
            finally:
                src.close()
        self._chat_models, self._replay_calls = chat, replay_calls
        self._retired: list[Any] = []
        self.llm = build_chat_client(self.cfg, chat, self.calls, replay_calls, prefer_host=self.hostname)
        self.embeddings = build_embeddings(self.cfg, emb, replay_vecs, prefer_host=self.hostname)
        self.services = GroupServices(llm_client=self.llm, embeddings=self.embeddings, llm_settings=self.simulation.llm,
                                      world=None, tokens=token_counter_for(self.simulation.llm.backend),
                                      seed=self.simulation.seed,
                                      prompts_dir=self.spec.prompts_dir,
                                      counts={t: a.count for t, a in self.simulation.agents.items()},
                                      routing=routing_from_settings(self.simulation.llm, self.simulation.seed),
                                      id_digits=self.simulation.id_digits)
        self.group = AgentGroup(self.services, self.cfg.memory, self.simulation.concurrency)
        self._active: tuple[int, set[str] | None] | None = None

    # -- population and world --
    def add_agents(self, agent_type: str, items: list[tuple[str, dict[str, Any]]]) -> int:
        # profiles arrive unpickled, each with its own copy of every "Very High" and "Python": share them
        return self.group.add_agents(self.spec.agent_classes[agent_type],
                                     ((sys.intern(a), interned(p)) for a, p in items))

    def set_world(self, world: Any) -> None:
        """The environment's read-only view; the last step of setup, so the agents are all here now."""
        self.services.world = world
        # agents live for the whole run: keep the cyclic GC from rescanning them on every collection
        # (without this, collection work grows with the population and the cost per agent with it)
        gc.collect()
        gc.freeze()

    def update_world(self, data: Any) -> None:
        if data is not None and self.services.world is not None:
            self.services.world.update(data)

    def begin_round(self, world_update: Any, intervention: str | None) -> None:
        """What changed between rounds: the world view, and the global intervention text."""
        self.update_world(world_update)
        self.services.intervention = intervention

    # -- models --
    def set_models(self, chat_models: list[dict[str, Any]], routing: dict[str, Any]) -> None:
        """Between rounds: a new set of chat endpoints (an adapter deployed) and who uses which model."""
        self.services.routing = ModelRouting.from_data(routing)
        chat = [ModelConfig.model_validate(m) for m in chat_models]
        if self._replay_calls is None and chat != self._chat_models:
            old = self.llm
            self._chat_models = chat
            self._rewire_llm(None)
            self._retired.append(old)  # closed with the host: a call of the last round may still hold it

    # -- interventions and interviews --
    def set_attribute(self, agent_id: str, path: str, value: Any) -> None:
        self.group.agents[agent_id].set_attribute(path, value)

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        a = self.group.agents[agent_id]
        return {"profile": a.profile, **a.get_state()}

    async def interview(self, agent_id: str, question: str, round_: int) -> tuple[str, list[tuple]]:
        """The agent answers in character; returns the answer and the LLM call rows it made."""
        agent = self.group.agents[agent_id]
        ctx = StepContext(agent, round_, "interview", [], self.services)
        answer = await agent.interview(ctx, question)
        self.embeddings.cache.drain_new()
        return answer, self.calls.drain()

    # -- phases --
    def active(self, round_: int) -> set[str] | None:
        if self._active is None or self._active[0] != round_:
            self._active = (round_, active_set(self.group.agents, self.simulation.activation, self.simulation.seed, round_))
        return self._active[1]

    async def run_phase(self, phase: Phase, round_: int, inboxes: dict[str, list[dict[str, Any]]],
                        on_step: Callable[[int], None] | None = None) -> PhaseOutput:
        res = await self.group.run_phase(phase, round_, inboxes, self.active(round_), on_step)
        return PhaseOutput(res.messages, res.actions, res.steps, res.failed, self.calls.drain(),
                           self.embeddings.cache.drain_new(), res.errors, res.outage)

    def drain(self) -> tuple[list[tuple], list[tuple[str, bytes]]]:
        """LLM call rows and new embeddings so far: the driver collects them during a long phase, so
        that neither side holds a whole phase's prompts in memory."""
        return self.calls.drain(), self.embeddings.cache.drain_new()

    def scheduled(self, phase: Phase, inboxes: dict[str, list], round_: int) -> int:
        return len(self.group.scheduled(phase, inboxes, self.active(round_)))

    def warm(self, run_store: str, round_: int) -> int:
        """Before re-running part of ``round_``: answer this group's recorded calls from the store.

        Calls answered this way are not recorded again; calls the store lacks (those in flight when
        the group died) go to the servers and are recorded as usual.
        """
        src = RunStore(run_store, readonly=True)
        try:
            calls = src.response_cache(round_, set(self.group.agents))
            warm_embeddings(self.embeddings, src.embeddings())
        finally:
            src.close()
        self._rewire_llm(ResponseCache(calls))
        return len(calls)

    def cold(self) -> None:
        """After the re-run: new calls go to the servers again, with nothing held in memory."""
        self._rewire_llm(None)

    def _rewire_llm(self, warm: ResponseCache | None) -> None:
        """Answer from ``warm`` first (or from the servers only); a replaying host keeps its replay."""
        if self._replay_calls is None:
            self.llm = build_chat_client(self.cfg, self._chat_models, self.calls, warm=warm, prefer_host=self.hostname)
            self.services.llm_client = self.llm

    # -- checkpoints --
    def checkpoint(self, round_dir: str) -> int:
        """Write this group's agents to ``round_dir`` (every group writes its own file, in parallel)."""
        return write_msgpack(group_file(Path(round_dir), self.index),
                             {"group": self.index, "agents": self.group.get_states()})

    def restore(self, round_dir: str) -> int:
        """Load the states of this group's agents from every group file of a checkpoint."""
        n = 0
        files = sorted(Path(round_dir).glob("group_*.msgpack"))
        own = group_file(Path(round_dir), self.index)
        if own in files:  # usually every agent is in our own file: read it first
            files.remove(own)
            files.insert(0, own)
        for path in files:
            data = read_msgpack(path)
            states = {a: s for a, s in data["agents"].items() if a in self.group.agents}
            self.group.set_states(states)
            n += len(states)
            if n >= len(self.group.agents):
                break
        return n

    # -- bookkeeping --
    def stats(self) -> dict[str, Any]:
        rss = 0
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        ray = sys.modules.get("ray")
        node = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else "local"
        return {"group": self.index, "pid": os.getpid(), "host": self.hostname, "node": node,
                "agents": len(self.group.agents), "cpu_s": time.process_time(), "rss_kb": rss,
                "llm_calls": self.calls.total}

    async def aclose(self) -> None:
        for old in self._retired:
            await old.aclose()
        await self.llm.aclose()
        await self.embeddings.aclose()
