"""The manifest written next to every adapter: what it was trained on, from what, and how it went."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from ..config import ConfigError, ConfigProblem
from ..config.errors import problems_from_validation

MANIFEST = "gensim_adapter.json"
SNAPSHOTS = "snapshots"  # in an adapter folder: the adapter as it was every --save-every steps, one folder per step


class AdapterManifest(BaseModel):
    """``gensim_adapter.json``: base model, method, data, losses, time and the parent adapter."""

    base_model: str
    method: Literal["sft", "ppo"]
    objective: Literal["tokens", "choices"] = Field("tokens", description="sft's loss: on the answer's tokens, "
                                                     "or on the options of choice rows (training.choice)")
    data_file: str
    data_sha256: str
    samples: int = Field(ge=1)
    epochs: float
    lora_rank: int
    learning_rate: float
    lr_schedule: Literal["constant", "linear"] | None = Field(None, description="sft's learning-rate schedule "
                                                               "(None: ppo, trl's own; adapters before it: constant)")
    losses: list[float] = Field(default_factory=list)
    reward_model_loss: list[float] = Field(default_factory=list)
    train_s: float
    device: str
    parent: str | None = None
    parent_chain: list[str] = Field(default_factory=list)
    actions: dict[str, int] = Field(default_factory=dict, description="training samples per action")
    created: str = ""
    step: int | None = Field(None, description="a snapshot's training step (``--save-every``): the adapter as it "
                             "was after this many of ``losses``; None: the finished adapter")


def write_manifest(folder: Path, manifest: AdapterManifest) -> None:
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2))


def read_manifest(folder: Path, arg: str = "--from") -> AdapterManifest:
    """An adapter's manifest; a one-line error naming the folder when it is not a GenSim adapter."""
    path = Path(folder) / MANIFEST
    if not (Path(folder) / "adapter_config.json").is_file():
        raise ConfigError([ConfigProblem(str(folder), arg, "not a PEFT adapter folder (no adapter_config.json)")])
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(folder), arg, f"no {MANIFEST}: not trained by gensim train")])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError([ConfigProblem(str(path), arg, f"unreadable manifest: {e}")]) from None
    try:
        return AdapterManifest.model_validate(data)
    except ValidationError as e:  # every field's problem, named, as config files get
        raise ConfigError(problems_from_validation(e, str(path))) from None


def snapshot_folder(adapter: Path, step: int) -> Path:
    """Where the snapshot of ``step`` is kept in an adapter folder being trained."""
    return Path(adapter) / SNAPSHOTS / f"step-{step:05d}"


def snapshot_step(folder: Path) -> int:
    """The training step a snapshot folder holds (its name: :func:`snapshot_folder`)."""
    return int(Path(folder).name.removeprefix("step-"))


def snapshots(adapter: Path) -> list[Path]:
    """An adapter's snapshots (``--save-every``), by step; empty when it has none."""
    folder = Path(adapter) / SNAPSHOTS
    found = [p for p in folder.glob("step-*") if p.is_dir() and p.name[5:].isdigit()] if folder.is_dir() else []
    return sorted(found, key=snapshot_step)


def same_base(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if Path(a).exists() and Path(b).exists() else a == b
