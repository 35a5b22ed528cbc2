"""Scenario discovery: a folder whose ``scenario.py`` defines ``SCENARIO``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..config.errors import ConfigError, ConfigProblem
from ..population.build import ImportedProfiles
from .agent import Agent
from .checks import Check
from .environment import Environment

ProfileGenerator = Callable[[int, int], dict[str, Any]]  # (seed, index) -> profile
ProfileImporter = Callable[[Path], "list[dict[str, Any]] | ImportedProfiles"]


class NoParams(BaseModel):
    """The ``scenario:`` section of a scenario that takes no parameters (it must be empty)."""

    model_config = {"extra": "forbid"}


@dataclass
class ScenarioSpec:
    """Everything the framework needs to run a scenario."""

    name: str
    agent_classes: dict[str, type[Agent]]
    environment: type[Environment]
    params_model: type[BaseModel] = NoParams
    generators: dict[str, ProfileGenerator] = field(default_factory=dict)
    importers: dict[str, ProfileImporter] = field(default_factory=dict)
    validators: dict[str, Callable[[Path], list[ConfigProblem]]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)  # the scenario's rules over recorded actions
    folder: Path | None = None
    # per-round metrics shown first after a run and by ``gensim metrics`` (names or globs, in order)
    key_metrics: list[str] = field(default_factory=list)

    @property
    def prompts_dir(self) -> Path | None:
        """The scenario's ``prompts/`` folder."""
        return self.folder / "prompts" if self.folder else None


def load_scenario(folder: Path) -> ScenarioSpec:
    """Import ``<folder>/scenario.py`` (as part of a package so that relative imports work)."""
    folder = folder.resolve()
    if not (folder / "scenario.py").is_file():
        raise ConfigError([ConfigProblem(str(folder), "scenario.py", "missing: a scenario folder defines SCENARIO there")])
    examples = Path(__file__).resolve().parent.parent / "examples"
    if folder.parent == examples:
        pkg = f"simulation.examples.{folder.name}"
    else:
        # keyed by the full path: two folders of the same name are two scenarios
        digest = hashlib.blake2b(str(folder).encode(), digest_size=4).hexdigest()
        pkg = "gensim_user_scenarios." + re.sub(r"\W", "_", folder.name) + "_" + digest
        if "gensim_user_scenarios" not in sys.modules:
            root = types.ModuleType("gensim_user_scenarios")
            root.__path__ = []
            sys.modules["gensim_user_scenarios"] = root
        if pkg not in sys.modules:
            init = folder / "__init__.py"
            spec = importlib.util.spec_from_file_location(pkg, init if init.exists() else None,
                                                          submodule_search_locations=[str(folder)])
            if spec is None:
                mod = types.ModuleType(pkg)
                mod.__path__ = [str(folder)]
            else:
                mod = importlib.util.module_from_spec(spec)
            sys.modules[pkg] = mod
            if spec is not None and spec.loader is not None and init.exists():
                spec.loader.exec_module(mod)
    try:
        module = importlib.import_module(f"{pkg}.scenario")
    except SyntaxError as e:
        raise ConfigError([ConfigProblem(str(e.filename or folder), f"line {e.lineno}", f"SyntaxError: {e.msg}")]) from None
    except ImportError as e:
        raise ConfigError([ConfigProblem(str(folder / "scenario.py"), "import", f"{type(e).__name__}: {e}")]) from None
    spec_obj = getattr(module, "SCENARIO", None)
    if not isinstance(spec_obj, ScenarioSpec):
        raise ConfigError([ConfigProblem(str(folder / "scenario.py"), "SCENARIO", "must be a ScenarioSpec")])
    spec_obj.folder = folder
    return spec_obj


def phase_problems(spec: ScenarioSpec, params: dict[str, Any], seed: int) -> list[ConfigProblem]:
    """Phases that name an agent type or a method the scenario does not have (``gensim check``)."""
    try:
        where = inspect.getsourcefile(spec.environment) or "environment"
    except TypeError:
        where = spec.environment.__name__
    try:
        phases = spec.environment(params, seed).phases(1)
    except Exception as e:  # noqa: BLE001 - reported as the scenario's problem, with its own words
        return [ConfigProblem(where, f"{spec.environment.__name__}.phases", f"raised {type(e).__name__}: {e}")]
    out = []
    for i, ph in enumerate(phases):
        cls = spec.agent_classes.get(ph.agent_type)
        if cls is None:
            out.append(ConfigProblem(where, f"phases[{i}] ({ph.name}).agent_type",
                                     f"unknown agent type '{ph.agent_type}' (known: {', '.join(sorted(spec.agent_classes))})"))
        elif not callable(getattr(cls, ph.method, None)):
            out.append(ConfigProblem(where, f"phases[{i}] ({ph.name}).method",
                                     f"{cls.__name__} has no method '{ph.method}'"))
        elif not inspect.iscoroutinefunction(getattr(cls, ph.method)):
            out.append(ConfigProblem(where, f"phases[{i}] ({ph.name}).method",
                                     f"{cls.__name__}.{ph.method} must be 'async def' (the framework awaits it)"))
    if not inspect.iscoroutinefunction(spec.environment.setup):
        out.append(ConfigProblem(where, f"{spec.environment.__name__}.setup",
                                 "must be 'async def setup(self, sim)' (the framework awaits it)"))
    return out
