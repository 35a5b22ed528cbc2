"""Run one agent step in-process on a fake model, and apply a check to what it recorded.

For unit tests of scenario logic and checks: no servers, no run folder. The responder decides
what the "model" answers to each request (it sees the request's action name, messages and
options); answers go through the same validation as a real server's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.models import LLMSettings, MemoryConfig
from ..core.agent import Agent
from ..core.checks import Check, CheckContext, Verdict
from ..core.context import GroupServices, StepContext
from ..core.records import Action
from ..llm import FakeChatClient, StructuredClient
from ..llm.fake import FakeEmbeddingClient
from ..llm.types import ChatRequest
from ..memory import AgentMemory
from ..memory.tokens import ByteTokenCounter


async def run_step(agent_cls: type[Agent], agent_id: str, profile: dict[str, Any], method: str,
                   responder: Callable[[ChatRequest], str], world: Any = None,
                   inbox: list[dict[str, Any]] | None = None, state: dict[str, Any] | None = None,
                   prompts_dir: Path | None = None, round_: int = 1, counts: dict[str, int] | None = None) -> StepContext:
    """Run ``agent.<method>(ctx)`` once with memory off; returns the context (``ctx.actions``, ``ctx.messages``)."""
    services = GroupServices(llm_client=StructuredClient(FakeChatClient(responder)), embeddings=FakeEmbeddingClient(),
                             llm_settings=LLMSettings(), world=world, tokens=ByteTokenCounter(), seed=0,
                             prompts_dir=prompts_dir, counts=counts or {})
    agent = agent_cls(agent_id, profile, AgentMemory(MemoryConfig(type="none")))
    if state:
        agent.state.update(state)
    ctx = StepContext(agent, round_, method, inbox or [], services)
    await getattr(agent, method)(ctx)
    return ctx


def apply_check(chk: Check, action: Action, profiles: dict[str, dict[str, Any]], env: Any = None,
                history: list[Action] | None = None, step_actions: list[Action] | None = None) -> Verdict:
    """The check's verdict on one action, with ``profiles`` by agent id and the actor's earlier actions."""
    past = history or []
    ctx = CheckContext(action, 1, "test", env, profiles.__getitem__,
                       lambda agent, name: [a for a in past if a.agent_id == agent and a.action == name],
                       step_actions or [action])
    return chk(ctx)
