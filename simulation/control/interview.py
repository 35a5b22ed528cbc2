"""Interview an agent of a recorded run (``gensim interview``), as of its last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, ConfigProblem
from ..core.checkpoint import latest_checkpoint
from ..runner import check_adapter_setting, read_run_config, recorded_scenario
from ..runtime import GroupSpec
from ..services.endpoints import Services
from ..store import RunLock, RunStore


async def interview_agent(run_dir: Path, agent_id: str, question: str, scenario: str | None = None) -> dict[str, Any]:
    """Interview one agent of a recorded run as of its last checkpoint; recorded, memory untouched."""
    from ..core.checkpoint import read_driver_state
    from ..llm.routing import adapter_paths, routing_with_deployed
    from ..runtime import GroupHost

    _, cfg = recorded_scenario(run_dir, read_run_config(run_dir), scenario)
    found = latest_checkpoint(run_dir)
    if found is None:
        raise ConfigError([ConfigProblem(str(run_dir), "checkpoints", "no checkpoint: nothing to interview")])
    lock = RunLock(run_dir, "interview").acquire()
    store = RunStore(run_dir / "run.sqlite")
    services = Services()
    host = None
    try:
        row = store.db.execute("SELECT agent_type, profile, grp FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            raise ConfigError([ConfigProblem(str(run_dir), "agent", f"no agent '{agent_id}' in this run")])
        check_adapter_setting(cfg)
        chat, emb = services.resolve(cfg)
        # the agent answers with the model it had at that checkpoint (an adapter is served again)
        state = read_driver_state(found[1])
        routing = routing_with_deployed(cfg.simulation.llm, cfg.simulation.seed, state.get("deployed") or [])
        adapters = {**adapter_paths(cfg.simulation.llm), **(state.get("adapters") or {})}
        model = routing.model_for(agent_id, row[0])
        if model in adapters:
            from ..services.deploy import ModelDeployer

            deployer = ModelDeployer(cfg, chat, services.owned, run_dir)
            deployer.check_adapter(Path(adapters[model]))
            deployer.deploy(Path(adapters[model]), model, deployer.resolve_mode(cfg.simulation.llm.deploy_mode))
            chat = deployer.models
        host = GroupHost(GroupSpec(row[2] or 0, cfg.model_dump_json(by_alias=True), [m.model_dump() for m in chat],
                                   [m.model_dump() for m in emb]))
        host.set_models([m.model_dump() for m in chat], routing.to_data())
        host.add_agents(row[0], [(agent_id, json.loads(row[1]))])
        host.restore(str(found[1]))
        answer, rows = await host.interview(agent_id, question, found[0])
        store.add_rows((), rows)
        store.add_intervention(found[0], "interview", agent_id, {"question": question, "answer": answer})
        store.flush()
        return {"agent": agent_id, "round": found[0], "question": question, "answer": answer}
    finally:
        if host is not None:
            await host.aclose()
        services.stop()
        store.close()
        lock.release()
