"""An experiment's design: a scenario, a full factorial grid of settings, seeds, a baseline cell, and
the options every run shares. Stored as ``experiment.json``; a re-run of the same command finds it
and goes on, a design that only adds seeds or grid values extends it (its finished runs count), any
other change is refused with the difference named."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import ConfigError, ConfigProblem

RUN_OPTION_KEYS = ("agents", "rounds")  # grid keys that are ``gensim run`` options, not key=value settings


class ExperimentDesign(BaseModel):
    """What ``gensim experiment`` runs: every grid cell with every seed."""

    model_config = ConfigDict(extra="forbid")

    scenario: str
    seeds: list[int] = Field(min_length=1)
    grid: dict[str, list[str]] = Field(default_factory=dict)
    baseline: dict[str, str] | None = None
    agents: int | None = None
    rounds: int | None = None
    llm: str | None = None
    overrides: list[str] = Field(default_factory=list)

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"--grid {key}: give at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"--grid {key}: a value is repeated")
        return v

    def cells(self) -> list[dict[str, str]]:
        """Every combination of the grid's values (one empty cell without a grid), in a fixed order."""
        keys = list(self.grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(self.grid[k] for k in keys))]

    def baseline_cell(self) -> dict[str, str] | None:
        if self.baseline is None:
            return None
        for cell in self.cells():
            if all(cell.get(k) == v for k, v in self.baseline.items()):
                return cell
        return None

    def differences(self, other: ExperimentDesign) -> list[str]:
        """What differs from ``other``, field by field."""
        a, b = self.model_dump(), other.model_dump()
        return [f"{k}: {b[k]!r} -> {a[k]!r}" for k in a if a[k] != b[k]]

    def extension_of(self, other: ExperimentDesign) -> list[str] | None:
        """What this design adds to ``other`` when it only adds seeds or values of the same grid keys
        (every run of ``other`` is one of this design's, so its finished runs count); None otherwise."""
        a, b = self.model_dump(exclude={"seeds", "grid"}), other.model_dump(exclude={"seeds", "grid"})
        if a != b or set(self.grid) != set(other.grid) or not set(other.seeds) <= set(self.seeds):
            return None
        if any(not set(other.grid[k]) <= set(v) for k, v in self.grid.items()):
            return None
        added = [f"seeds {sorted(set(self.seeds) - set(other.seeds))}"] if set(self.seeds) != set(other.seeds) else []
        added += [f"{k} {[x for x in v if x not in other.grid[k]]}" for k, v in self.grid.items()
                  if set(v) != set(other.grid[k])]
        return added


def cell_name(cell: dict[str, str]) -> str:
    """A folder-safe name of a cell: ``agents=20,search_k=3`` (``base`` without a grid)."""
    if not cell:
        return "base"
    return ",".join(f"{k.split('.')[-1] if k.startswith('scenario.') else k}={v}" for k, v in cell.items()).replace(
        "/", "_")


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``key=v1,v2`` arguments as a grid; a bad one is a one-line error naming it."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError([ConfigProblem("<command line>", "--grid", f"expected key=v1,v2,..., got {spec!r}")])
        if key in grid:
            raise ConfigError([ConfigProblem("<command line>", "--grid", f"{key} given twice")])
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def parse_baseline(spec: str | None, grid: dict[str, list[str]]) -> dict[str, str] | None:
    """``--baseline key=v[,key=v]``: must name grid keys and their values."""
    if not spec:
        return None
    out = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in grid:
            raise ConfigError([ConfigProblem("<command line>", "--baseline",
                                             f"{part!r}: name a --grid key (one of {', '.join(grid) or 'none'})")])
        if value not in grid[key]:
            raise ConfigError([ConfigProblem("<command line>", "--baseline",
                                             f"{key}={value}: not one of the grid's values {grid[key]}")])
        out[key] = value
    return out


def run_args(design: ExperimentDesign, cell: dict[str, str], seed: int) -> dict[str, Any]:
    """One run's options: ``agents``/``rounds`` (from the cell or the design), seed, and settings."""
    agents = int(cell["agents"]) if "agents" in cell else design.agents
    rounds = int(cell["rounds"]) if "rounds" in cell else design.rounds
    settings = [*design.overrides, *(f"{k}={v}" for k, v in cell.items() if k not in RUN_OPTION_KEYS)]
    return {"agents": agents, "rounds": rounds, "seed": seed, "overrides": settings}


def load_design(path: Path) -> ExperimentDesign:
    return ExperimentDesign.model_validate(json.loads(path.read_text(encoding="utf-8"))["design"])
