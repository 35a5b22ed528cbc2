"""Shared fixtures: a scratch copy of a scenario wired to stub servers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simulation.testing.procs import start_stub, stub_models

EXAMPLES = Path(__file__).resolve().parent.parent / "simulation" / "examples"


def copy_scenario(tmp: Path, name: str = "job_seeking") -> Path:
    dst = tmp / name
    shutil.copytree(EXAMPLES / name, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def set_models(folder: Path, models: list[dict]) -> None:
    (folder / "configs" / "model_configs.json").write_text(json.dumps(models))


@pytest.fixture()
def stub():
    """A live stub: every free-text answer carries a tag unique to the call (see ``strip_live``)."""
    s = start_stub(live=True)
    yield s
    s.stop()


@pytest.fixture()
def stub_scenario(tmp_path, stub):
    folder = copy_scenario(tmp_path)
    set_models(folder, stub_models([stub], embed=stub))
    return folder
