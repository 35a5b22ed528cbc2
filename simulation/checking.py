"""``gensim check``: everything about a scenario that can be known before a run starts.

The configs and profile files (the one loader), the prompt templates (syntax, templates the code
names but the folder lacks, variables no render call gives), how many profiles each type takes,
optionally the endpoints (``--endpoints``) and a dry run of the setup and one round on the fake
model (``--dry-run``), which catches code that crashes.
"""

from __future__ import annotations

import ast
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import jinja2
import jinja2.meta

from .config import ConfigError, ConfigProblem, RunConfig
from .config.loader import SIM_CONFIG
from .core.errors import RunStopped
from .core.scenario import ScenarioSpec
from .population.build import profile_sources

# what ctx.render always passes (see StepContext.render)
RENDER_GIVES = frozenset({"agent", "profile", "intervention"})


def _render_calls(folder: Path) -> tuple[dict[str, set[str] | None], list[tuple[str, str, int]]]:
    """Per template named in a ``render("name", ...)`` call of the scenario's code: the keywords
    given (None when a ``**kwargs`` hides them); and where each name is used (file, name, line)."""
    given: dict[str, set[str] | None] = {}
    uses: list[tuple[str, str, int]] = []
    for py in sorted(folder.rglob("*.py")):
        try:
            tree = ast.parse(py.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue  # importing the scenario reports it
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "render"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            name = node.args[0].value
            uses.append((str(py), name, node.lineno))
            kws = {k.arg for k in node.keywords}
            if None in kws or given.get(name, set()) is None:
                given[name] = None
            else:
                given[name] = given.get(name, set()) | {k for k in kws if k}  # type: ignore[operator]
    return given, uses


def template_problems(spec: ScenarioSpec) -> list[ConfigProblem]:
    """Syntax errors, missing templates and undefined variables in a scenario's prompts."""
    folder = spec.folder
    if folder is None:
        return []
    prompts = folder / "prompts"
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    problems: list[ConfigProblem] = []
    given, uses = _render_calls(folder)
    for file, name, line in uses:
        if not (prompts / name).is_file():
            problems.append(ConfigProblem(f"{file}:{line}", f"render('{name}')", f"no template {prompts / name}"))
    for path in sorted(prompts.rglob("*")) if prompts.is_dir() else []:
        if not path.is_file():
            continue
        rel = path.relative_to(prompts).as_posix()
        try:
            source = path.read_text(encoding="utf-8")
            tree = env.parse(source)
            env.compile(source)  # what parsing leaves out: filters and tests that do not exist
        except jinja2.TemplateAssertionError as e:
            problems.append(ConfigProblem(str(path), f"line {e.lineno}", f"{e.message} (jinja2's built-in filters "
                                          "and tests only: a scenario cannot add its own)"))
            continue
        except jinja2.TemplateSyntaxError as e:
            problems.append(ConfigProblem(str(path), f"line {e.lineno}", f"template syntax error: {e.message}"))
            continue
        except UnicodeDecodeError as e:
            problems.append(ConfigProblem(str(path), "", f"cannot read: {e}"))
            continue
        if not source.strip():
            problems.append(ConfigProblem(str(path), "", "empty template: every prompt rendered from it would be "
                                          "empty"))
            continue
        kws = given.get(rel, set())
        if kws is None or rel not in given:
            continue  # rendered with **kwargs, or by code this check cannot see
        for var in sorted(jinja2.meta.find_undeclared_variables(tree) - kws - RENDER_GIVES):
            problems.append(ConfigProblem(str(path), var, "undefined variable: no render('" + rel + "', ...) call "
                                          "gives it (every step rendering it would fail)"))
    return problems


def endpoint_problems(cfg: RunConfig, timeout_s: float = 5.0) -> list[ConfigProblem]:
    """Ask every configured endpoint for its models: unreachable, not OpenAI-compatible, or not serving
    the configured model."""
    path = str(Path(cfg.scenario_dir) / SIM_CONFIG.parent / cfg.simulation.model_config_path)
    problems = []
    for i, m in enumerate(cfg.models):
        url = m.base_url.rstrip("/") + "/models"
        where = f"[{i}] ({m.config_name}).client_args.base_url"
        try:
            r = httpx.get(url, timeout=timeout_s, headers={"Authorization": f"Bearer {m.api_key}"})
        except httpx.HTTPError as e:
            problems.append(ConfigProblem(path, where, f"{url} unreachable: {type(e).__name__}: {e}"))
            continue
        if r.status_code != 200:
            problems.append(ConfigProblem(path, where, f"{url} answered HTTP {r.status_code}"))
            continue
        try:
            served = [d["id"] for d in r.json()["data"]]
        except (ValueError, KeyError, TypeError):
            problems.append(ConfigProblem(path, where, f"{url} is not an OpenAI-compatible /models "
                                          f"(reply starts {r.text[:60]!r})"))
            continue
        if m.model_name not in served and not _answers_anyway(m, timeout_s):
            problems.append(ConfigProblem(path, f"[{i}] ({m.config_name}).model_name",
                                          f"{url} serves {', '.join(served) or 'nothing'}, not '{m.model_name}'"))
    return problems


def _answers_anyway(m: Any, timeout_s: float) -> bool:
    """Some servers (llama.cpp) list a file path yet answer any model name: ask them once."""
    base = m.base_url.rstrip("/")
    if m.model_type == "openai_embedding":
        url, body = base + "/embeddings", {"model": m.model_name, "input": ["ping"]}
    else:
        url, body = base + "/chat/completions", {"model": m.model_name, "max_tokens": 1,
                                                 "messages": [{"role": "user", "content": "ping"}]}
    try:
        return httpx.post(url, json=body, timeout=max(timeout_s, 30.0),
                          headers={"Authorization": f"Bearer {m.api_key}"}).status_code == 200
    except httpx.HTTPError:
        return False


def answer_field_problems(spec: ScenarioSpec, run_dir: Path) -> list[ConfigProblem]:
    """Checks whose ``answer=`` names a data field that none of their recorded actions has (a typo
    there would make the correction exam grade the recorded answer in place of every other one)."""
    from .store import RunStore

    named = [c for c in spec.checks if isinstance(c.answer, str)]
    if not named:
        return []
    store = RunStore(run_dir / "run.sqlite", readonly=True)
    try:
        fields: dict[str, set[str]] = {}
        for action, data in store.db.execute("SELECT action, data FROM actions"):
            fields.setdefault(action, set()).update(json.loads(data))
    finally:
        store.close()
    return [ConfigProblem(f"check {c.name}", "answer", f"'{c.answer}' is no field of its '{c.action}' actions "
                          f"(they have: {', '.join(sorted(fields[c.action])) or 'none'})")
            for c in named if c.action in fields and c.answer not in fields[c.action]]


def dry_run(scenario: str, overrides: list[str], agents: int | None, spec: ScenarioSpec | None = None) -> dict[str, Any]:
    """The setup and one round on the fake model in a scratch folder (kept, and named, if it fails);
    with ``spec``, its checks' ``answer=`` fields are checked against the actions recorded."""
    from .runner import RunOptions, run_simulation

    scratch = Path(tempfile.mkdtemp(prefix="gensim-dry-run-"))
    opts = RunOptions(scenario=scenario, agents=agents, rounds=1, out=str(scratch / "run"), progress=False,
                      overrides=[*overrides, "llm.backend=fake"])
    summary = asyncio.run(run_simulation(opts))
    problems = answer_field_problems(spec, scratch / "run") if spec is not None else []
    shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        raise ConfigError(problems)
    return summary


def check_scenario(scenario: str, overrides: list[str], dry_run_too: bool = False, agents: int | None = None,
                   endpoints: bool = False) -> int:
    """``gensim check``: print what a run would be made of; one line per problem (exit 2) otherwise."""
    from .runner import RunOptions, prepare_config

    spec, cfg = prepare_config(RunOptions(scenario=scenario, overrides=overrides, agents=agents))
    problems = template_problems(spec)
    if endpoints:
        problems += endpoint_problems(cfg)
    if problems:
        raise ConfigError(problems)
    counts = {t: a.count for t, a in cfg.simulation.agents.items()}
    try:
        sources, _ = profile_sources(spec, counts, cfg.profiles, cfg.simulation.seed)
    except (ValueError, OSError) as e:
        raise ConfigError([ConfigProblem(scenario, "profiles", str(e))]) from None
    for s in sources.values():
        print(f"  {s.line()}")
    if endpoints:
        print(f"  endpoints: {len(cfg.models)} answered with their models" if cfg.models
              else "  endpoints: none configured (the embedded servers start with the run)")
    if dry_run_too:
        try:
            summary = dry_run(scenario, overrides, agents, spec)
        except RunStopped as e:
            print(f"error: dry run (fake model): {e}", file=sys.stderr)
            return 2
        print(f"  dry run: setup and round 1 ran on the fake model: {summary['agents']} agents, "
              f"{summary['actions']} actions, {summary['llm_calls']} LLM calls, {summary['failed_steps']} failed steps")
    shown = ", ".join(f"{t}={n}" for t, n in counts.items())
    print(f"ok: {spec.name} ({shown}; memory={cfg.memory.type}; models={len(cfg.models)})")
    return 0
