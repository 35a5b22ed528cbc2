"""Fork a run from any round: a new run folder that starts from the parent's checkpoint of round R-1.

The parent is only read. The fork holds its own copy of everything recorded up to round R-1 (so it
can itself be resumed, replayed or forked), that checkpoint, and a config that may differ from the
parent's (another model, an adapter, an intervention, a seed). Its ``meta`` names the parent and the
round. Running it is resuming it: rounds before R are not run again.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import ConfigError, ConfigProblem, RunConfig
from .config.errors import problems_from_validation
from .config.loader import apply_override, parse_override
from .core.checkpoint import DRIVER, round_dir
from .store import RunStore

FIXED = ("agents", "scenario_dir", "name")  # a fork keeps its parent's population and scenario


def forked_config(parent: RunConfig, overrides: list[str], seed: int | None) -> RunConfig:
    """The parent's config with ``key=value`` overrides (``memory.<field>`` reaches the memory config)."""
    data: dict[str, Any] = parent.model_dump(by_alias=True)
    for item in overrides:
        key, value = parse_override(item)
        if key.split(".")[0] in FIXED:
            raise ConfigError([ConfigProblem("<command line>", key, "a fork keeps its parent's population and scenario")])
        if key.startswith("memory."):
            apply_override(data["memory"], key[len("memory."):], value)
        else:
            apply_override(data["simulation"], key, value)
    if seed is not None:
        data["simulation"]["seed"] = seed
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(problems_from_validation(e, "<command line>")) from None


def make_fork(parent_dir: Path, from_round: int, out: Path, cfg: RunConfig, replay: bool,
              plan: list[dict[str, Any]] | None = None) -> Path:
    """Create the fork's folder: config, the records of rounds before ``from_round``, and the checkpoint.

    ``plan`` is the fork's intervention schedule (``meta.schedule``), which running it applies.
    """
    if from_round < 1:
        raise ConfigError([ConfigProblem("<command line>", "--from-round", "rounds are numbered from 1")])
    src = round_dir(parent_dir, from_round - 1)
    if not (src / DRIVER).is_file():
        raise ConfigError([ConfigProblem(str(parent_dir), "--from-round",
                                         f"the parent has no complete checkpoint of round {from_round - 1}")])
    if (out / "run.sqlite").exists():
        raise ConfigError([ConfigProblem(str(out), "--out", "already holds a run; use another folder")])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.model_dump_json(indent=2, by_alias=True))
    parent_db = sqlite3.connect(f"file:{parent_dir / 'run.sqlite'}?mode=ro", uri=True)
    try:
        child_db = sqlite3.connect(str(out / "run.sqlite"))
        parent_db.backup(child_db)  # a consistent copy, even of a run that is still being written
        child_db.close()
    finally:
        parent_db.close()
    store = RunStore(out / "run.sqlite")
    try:
        store.truncate_after(from_round - 1)
        with store.db:
            store.db.execute("DELETE FROM ratings WHERE llm_call_id NOT IN (SELECT id FROM llm_calls)")
            store.db.execute("DELETE FROM meta WHERE key IN ('finished', 'summary', 'stopped', 'recoveries')")
        parent_meta = store.meta()
        store.set_meta(parent=str(parent_dir.resolve()), from_round=from_round, created=time.time(),
                       seed=cfg.simulation.seed, replay_from=str(parent_dir.resolve()) if replay else None,
                       parent_replay_from=parent_meta.get("replay_from"), schedule=plan or [])
    finally:
        store.close()
    shutil.copytree(src, round_dir(out, from_round - 1))
    return out
