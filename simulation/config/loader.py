"""The one loader: reads a scenario's config files, applies overrides, validates everything.

Every problem is collected as (file, field, reason) before anything starts, so a user sees all
of them at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, ConfigProblem, problems_from_validation
from .models import MemoryConfig, ModelConfig, RunConfig, SimulationConfig

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
SIM_CONFIG = Path("configs") / "simulation_config.yml"


def resolve_scenario_dir(name_or_path: str) -> Path:
    """A scenario folder from its name (under ``simulation/examples``) or a path."""
    p = Path(name_or_path).expanduser()
    if (p / SIM_CONFIG).is_file():
        return p.resolve()
    if p.name == "simulation_config.yml" and p.is_file():
        return p.resolve().parent.parent
    q = EXAMPLES_DIR / name_or_path
    if (q / SIM_CONFIG).is_file():
        return q.resolve()
    known = sorted(d.name for d in EXAMPLES_DIR.iterdir() if (d / SIM_CONFIG).is_file())
    raise ConfigError([ConfigProblem(
        str(name_or_path), "scenario",
        f"not a scenario folder (no {SIM_CONFIG}) nor a known scenario ({', '.join(known)})",
    )])


class DuplicateKey(ValueError):
    """A mapping names the same key twice (YAML and JSON parsers would keep the later one silently).

    ``where`` is the line (YAML), ``why`` the reason: a :class:`ConfigProblem`'s field and reason.
    """

    def __init__(self, where: str, why: str):
        super().__init__(f"{where}: {why}" if where else why)
        self.where, self.why = where, why


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key in seen:
                raise DuplicateKey(f"line {key_node.start_mark.line + 1}", f"duplicate key '{key}' (first on line "
                                   f"{seen[key]}; the later value would silently win)")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:
        raise DuplicateKey("", f"duplicate key '{dup}' (the later value would silently win)")
    return dict(pairs)


def load_structured_text(text: str, yaml_file: bool) -> Any:
    """Parse YAML or JSON text, refusing duplicate keys (:class:`DuplicateKey`)."""
    if yaml_file:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _read_structured(path: Path, problems: list[ConfigProblem]) -> Any:
    if not path.is_file():
        problems.append(ConfigProblem(str(path), "", "file not found"))
        return None
    try:
        text = path.read_text(encoding="utf-8")
        return load_structured_text(text, path.suffix in (".yml", ".yaml"))
    except DuplicateKey as e:
        problems.append(ConfigProblem(str(path), e.where, e.why))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problems.append(ConfigProblem(str(path), where, f"invalid YAML: {getattr(e, 'problem', e)}"))
    except json.JSONDecodeError as e:
        problems.append(ConfigProblem(str(path), f"line {e.lineno}", f"invalid JSON: {e.msg}"))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(ConfigProblem(str(path), "", f"cannot read: {e}"))
    return None


def read_model_configs(path: Path, problems: list[ConfigProblem]) -> list[ModelConfig]:
    """The entries of a ``model_configs.json`` (or YAML); what is wrong with them goes to ``problems``."""
    models: list[ModelConfig] = []
    raw = _read_structured(path, problems)
    if raw is None:
        return models
    if not isinstance(raw, list):
        problems.append(ConfigProblem(str(path), "", "top level must be a list of model entries"))
        return models
    for i, entry in enumerate(raw):
        try:
            models.append(ModelConfig.model_validate(entry))
        except ValidationError as e:
            problems += problems_from_validation(e, str(path), prefix=f"[{i}]")
    names = [m.config_name for m in models]
    for n in {n for n in names if names.count(n) > 1}:
        problems.append(ConfigProblem(str(path), "config_name", f"duplicate config_name '{n}'"))
    return models


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b.c=value`` with the value read as a YAML scalar (``3``, ``true``, ``[1,2]``, ``text``)."""
    if "=" not in item:
        raise ConfigError([ConfigProblem("<command line>", item, "override must look like key=value")])
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError([ConfigProblem("<command line>", item, "empty key in override")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_override(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


def _resolve(base: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _lenient_view(raw: dict[str, Any]) -> dict[str, Any]:
    """What an invalid ``simulation_config.yml`` still says about the other files and the agents
    (its own problems are reported by validation; here a malformed value is just left out)."""
    def text(key: str, default: str) -> str:
        v = raw.get(key, default)
        return v if isinstance(v, str) else default

    agents: dict[str, tuple[int | None, str | None]] = {}
    for name, entry in (raw.get("agents") if isinstance(raw.get("agents"), dict) else {}).items():
        if isinstance(entry, dict):
            count = entry.get("count")
            prof = entry.get("profiles")
            agents[str(name)] = (count if isinstance(count, int) and count >= 0 else None,
                                 prof if isinstance(prof, str) else None)
    scenario = raw.get("scenario")
    return {"memory_config": text("memory_config", "memory_config.json"),
            "model_config": text("model_config", "model_configs.json"),
            "scenario": scenario if isinstance(scenario, dict) else {}, "agents": agents}


def load_run_config(
    scenario_dir: Path,
    overrides: Iterable[str] = (),
    params_model: type[BaseModel] | None = None,
    profile_validators: dict[str, Callable[[Path], list[ConfigProblem]]] | None = None,
    agent_types: Iterable[str] | None = None,
) -> RunConfig:
    """Load and validate every config file of a scenario; raise ``ConfigError`` listing all problems."""
    problems: list[ConfigProblem] = []
    sim_path = scenario_dir / SIM_CONFIG
    raw = _read_structured(sim_path, problems)
    if raw is None and not problems:
        problems.append(ConfigProblem(str(sim_path), "", "empty file: it needs at least name and agents"))
    if raw is not None and not isinstance(raw, dict):
        problems.append(ConfigProblem(str(sim_path), "", "top level must be a mapping"))
        raw = None
    memory_over: dict[str, Any] = {}
    parsed = [parse_override(o) for o in overrides]
    if raw is not None:
        for key, value in parsed:
            if key.startswith("memory."):
                apply_override(memory_over, key[len("memory."):], value)
            else:
                apply_override(raw, key, value)
    sim: SimulationConfig | None = None
    if raw is not None:
        try:
            sim = SimulationConfig.model_validate(raw)
        except ValidationError as e:
            problems += problems_from_validation(e, str(sim_path))
    if raw is None:  # unreadable: the other files cannot be located
        raise ConfigError(problems)
    # an invalid simulation config still names the other files: check them too, so that every
    # problem is reported at once
    view = _lenient_view(raw) if sim is None else {
        "memory_config": sim.memory_config, "model_config": sim.model_config_path, "scenario": sim.scenario,
        "agents": {t: (a.count, a.profiles) for t, a in sim.agents.items()}}
    cfg_dir = sim_path.parent

    if agent_types is not None:
        known = set(agent_types)
        for name in view["agents"]:
            if name not in known:
                problems.append(ConfigProblem(
                    str(sim_path), f"agents.{name}", f"unknown agent type (known: {', '.join(sorted(known))})"))
        counts = [n for n, _ in view["agents"].values()]
        if counts and None not in counts and sum(counts) == 0:
            problems.append(ConfigProblem(str(sim_path), "agents", "total agent count is 0"))

    mem_path = _resolve(cfg_dir, view["memory_config"])
    memory = MemoryConfig()
    mem_raw = _read_structured(mem_path, problems)
    if mem_raw is not None:
        if not isinstance(mem_raw, dict):
            problems.append(ConfigProblem(str(mem_path), "", "top level must be an object"))
        else:
            for key, value in memory_over.items():
                mem_raw[key] = value
            try:
                memory = MemoryConfig.model_validate(mem_raw)
            except ValidationError as e:
                problems += problems_from_validation(e, str(mem_path))

    models = read_model_configs(_resolve(cfg_dir, view["model_config"]), problems)

    params: dict[str, Any] = dict(view["scenario"])
    if params_model is not None:
        try:
            params = params_model.model_validate(view["scenario"]).model_dump(mode="json")
        except ValidationError as e:
            problems += problems_from_validation(e, str(sim_path), prefix="scenario")

    profiles: dict[str, str | None] = {}
    for agent_type, (_, profile_file) in view["agents"].items():
        if profile_file is None:
            profiles[agent_type] = None
            continue
        ppath = _resolve(cfg_dir, profile_file)
        profiles[agent_type] = str(ppath)
        if not ppath.is_file():
            problems.append(ConfigProblem(str(sim_path), f"agents.{agent_type}.profiles", f"file not found: {ppath}"))
        elif profile_validators and agent_type in profile_validators:
            problems += profile_validators[agent_type](ppath)

    if sim is not None:
        problems += _llm_problems(sim, models, agent_types, str(sim_path))
    if problems or sim is None:
        raise ConfigError(problems)
    return RunConfig(scenario_dir=str(scenario_dir), simulation=sim, memory=memory, models=models,
                     params=params, profiles=profiles)


def _served_names(models: list[ModelConfig], sim: SimulationConfig) -> set[str] | None:
    """The model names agents may ask for: the chat entries' (or the launch manifest's, or the embedded
    servers') names and adapters, and ``llm.adapter``'s name. None: not known before the run."""
    from ..llm.routing import adapter_route
    from ..services.manifest import read_manifest

    chat = [m for m in models if m.model_type == "openai_chat"]
    if not chat:
        entries = read_manifest("llm")
        if entries:
            names = {n for e in entries for n in (e.get("config_name"), e.get("model_name")) if n}
        elif sim.embedded.enabled:
            from ..services.model_assets import CHAT_MODEL_NAME, embedded_chat_name

            names = {CHAT_MODEL_NAME, *(embedded_chat_name(i) for i in range(sim.embedded.chat_servers))}
        else:
            return None
    else:
        names = {n for m in chat for n in (m.config_name, m.model_name, *m.adapters)}
    adapter = adapter_route(sim.llm)
    return names | {adapter} if adapter else names


def _llm_problems(sim: SimulationConfig, models: list[ModelConfig], agent_types: Iterable[str] | None,
                  file: str) -> list[ConfigProblem]:
    """``llm.model``, ``llm.model_by_type`` and ``llm.adapter_types`` name served models and real agent types.

    A typo in a model name would otherwise split the calls between endpoints, and an adapter for a
    type that does not exist would be listed as deployed while no agent used it.
    """
    out: list[ConfigProblem] = []
    types = set(agent_types) if agent_types is not None else set(sim.agents)
    for t in sorted(set(sim.llm.model_by_type) - types):
        out.append(ConfigProblem(file, f"llm.model_by_type.{t}", f"no agent type '{t}' (types: {', '.join(sorted(types))})"))
    for t in sorted(set(sim.llm.adapter_types) - types):
        out.append(ConfigProblem(file, "llm.adapter_types", f"no agent type '{t}' (types: {', '.join(sorted(types))})"))
    if sim.llm.backend == "fake":
        return out
    names = _served_names(models, sim)
    if names is None:
        return out
    wanted = [("llm.model", sim.llm.model)] + [(f"llm.model_by_type.{t}", m) for t, m in sim.llm.model_by_type.items()]
    for field, name in wanted:
        if name is not None and name not in names:
            out.append(ConfigProblem(file, field, f"'{name}' is not a configured chat model (served: "
                                     f"{', '.join(sorted(names))})"))
    return out
