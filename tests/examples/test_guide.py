"""The newcomer test: the scenario guide's example, built only from the guide, outside the repository."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from simulation.testing.procs import stub_models

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "simulation" / "README.md"
BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.S)


def guide_files() -> dict[str, str]:
    return {m["path"]: m["body"] + "\n" for m in BLOCK.finditer(GUIDE.read_text())}


def test_readme_links_the_guide():
    assert "simulation/README.md" in (ROOT / "README.md").read_text()


def test_guide_example_is_the_shipped_one_and_short():
    files = guide_files()
    assert set(files) >= {"scenario.py", "configs/simulation_config.yml", "configs/memory_config.json",
                          "configs/model_configs.json", "prompts/vote.j2", "prompts/voter.j2"}
    shipped = ROOT / "simulation" / "examples" / "polling"
    for rel, body in files.items():
        assert (shipped / rel).read_text() == body, f"the guide's {rel} drifted from examples/polling"
    assert len(files["scenario.py"].splitlines()) < 100


def test_scenario_from_the_guide_runs_outside_the_repo(stub):
    with tempfile.TemporaryDirectory(prefix="newcomer-") as tmp:  # not under the checkout
        folder = Path(tmp) / "polling_copy"
        assert ROOT not in folder.parents
        for rel, body in guide_files().items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(body)
        # the guide's [] means "start the embedded servers"; here the stub stands in for them
        (folder / "configs" / "model_configs.json").write_text(json.dumps(stub_models([stub], embed=stub)))
        env = dict(os.environ)
        check = subprocess.run([sys.executable, "-m", "simulation.cli", "check", str(folder)], cwd=tmp, env=env,
                               capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stderr
        run = Path(tmp) / "run"
        p = subprocess.run([sys.executable, "-m", "simulation.cli", "run", str(folder), "--agents", "30", "--rounds", "2",
                            "--out", str(run), "--no-progress", "scenario.question=Lower the speed limit?"],
                           cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        with sqlite3.connect(run / "run.sqlite") as db:
            shares = db.execute("SELECT round, SUM(value) FROM metrics WHERE name LIKE 'share_%' GROUP BY round").fetchall()
            votes = db.execute("SELECT COUNT(*) FROM actions WHERE action = 'vote' AND valid = 1").fetchone()[0]
            prompt = db.execute("SELECT prompt FROM llm_calls WHERE action = 'vote' LIMIT 1").fetchone()[0]
        assert [r for r, _ in shares] == [1, 2] and all(abs(s - 1.0) < 1e-9 for _, s in shares)
        assert votes == 60 and "Lower the speed limit?" in prompt


# -- what a newcomer writing a rumour scenario tripped on: each fact the guide states, shown true --

PROBE = '''
from typing import Any
from simulation.core import Agent, Environment, Message, Phase, ScenarioSpec, StepContext

SEEN: dict = {}


class Person(Agent):
    agent_type = "person"
    __slots__ = ()

    async def tell(self, ctx: StepContext) -> None:
        SEEN.setdefault("agent_is_self", []).append(ctx.agent is self and ctx.agent.id == self.id)
        if self.id.endswith("0"):
            ctx.send(ctx.random_agent("person") or self.id, "rumour", text="the mill closes")
        ctx.act("tell")

    async def hear(self, ctx: StepContext) -> None:
        SEEN.setdefault("hear", []).extend((m.sender, m.to, m.kind, dict(m.data)) for m in ctx.inbox)
        ctx.act("hear", heard=len(ctx.inbox))

    async def later(self, ctx: StepContext) -> None:
        SEEN.setdefault("later", []).extend(ctx.inbox)
        ctx.act("later")


class Village(Environment):
    async_setup = True

    async def setup(self, sim: Any) -> None:
        SEEN["profiles"] = sim.profiles("person")[:2]

    def phases(self, round_: int) -> list[Phase]:
        return [Phase("tell", "person", "tell"), Phase("hear", "person", "hear", "inbox"),
                Phase("later", "person", "later")]

    def observe(self, phase, round_, actions, messages) -> None:
        SEEN.setdefault("actions", []).extend((a.agent_id, a.action, a.valid, a.data) for a in actions)


SCENARIO = ScenarioSpec(name="probe", agent_classes={"person": Person}, environment=Village,
                        generators={"person": lambda seed, i: {"name": f"P{i}"}})
'''


def _probe(tmp: Path, name: str, code: str = PROBE) -> Path:
    folder = tmp / name
    (folder / "configs").mkdir(parents=True)
    (folder / "scenario.py").write_text(code)
    (folder / "configs" / "simulation_config.yml").write_text("name: probe\nrounds: 1\nagents: {person: {count: 10}}\n")
    (folder / "configs" / "memory_config.json").write_text('{"type": "none"}')
    (folder / "configs" / "model_configs.json").write_text("[]")
    return folder


def test_guide_facts_hold(tmp_path):
    """setup is awaited and gets (agent_id, profile) pairs; ctx.agent is the agent; a message has
    sender/to/kind/data and lasts the next phase only; actions are read by field name."""
    from simulation.cli import main

    folder = _probe(tmp_path, "probe_facts")
    assert main(["run", str(folder), "--llm", "fake", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    seen = next(m for m in sys.modules.values()
                if getattr(m, "__file__", None) == str((folder / "scenario.py").resolve())).SEEN
    assert seen["profiles"] == [("person-0", {"name": "P0"}), ("person-1", {"name": "P1"})]
    assert seen["agent_is_self"] and all(seen["agent_is_self"])
    assert seen["hear"] and all(s == "person-0" and k == "rumour" and d == {"text": "the mill closes"}
                                for s, _, k, d in seen["hear"])
    assert seen["later"] == []  # the phase after next: the message is gone
    assert ("person-0", "tell", True, {}) in seen["actions"]


def test_check_says_setup_and_phase_methods_must_be_async(tmp_path, capsys):
    from simulation.cli import main

    code = PROBE.replace("async def setup(self, sim", "def setup(self, sim").replace("async def later", "def later")
    folder = _probe(tmp_path, "probe_sync", code)
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Village.setup: must be 'async def" in err and "Person.later must be 'async def'" in err


def test_templates_trim_blocks_as_the_guide_says(tmp_path):
    from simulation.config.models import LLMSettings
    from simulation.core.context import GroupServices

    (tmp_path / "t.j2").write_text("A{% if x %}\n  B{% endif %}\nC\n{{ x }}\nD")
    services = GroupServices(None, None, LLMSettings(), None, None, 0, prompts_dir=tmp_path)
    assert services.template("t.j2").render(x=1) == "A  BC\n1\nD"


def test_id_digits_keep_ids_across_scaling(tmp_path):
    from simulation.cli import main

    ids = []
    for n in (8, 150):
        run = tmp_path / f"run{n}"
        assert main(["run", "polling", "--llm", "fake", "--agents", str(n), "--rounds", "1", "--out", str(run),
                     "--no-progress", "id_digits=4"]) == 0
        with sqlite3.connect(run / "run.sqlite") as db:
            ids.append({a for (a,) in db.execute("SELECT agent_id FROM agents")})
    assert "voter-0003" in ids[0] and "voter-0003" in ids[1] and "voter-0149" in ids[1]


def test_gensim_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.sqlite").write_bytes(b"not a database, but a run folder's name for one" * 40)
    args = [sys.executable, "-m", "simulation.cli", "export", str(bad)]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=120)
    loud = subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, "GENSIM_DEBUG": "1"})
    assert quiet.returncode != 0 and "GENSIM_DEBUG=1" in quiet.stderr and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback (most recent call last)" in loud.stderr


def test_guide_states_each_fact():
    text = GUIDE.read_text()
    for fact in ("must be `async`", "`(agent_id, profile)` pairs", "`ctx.agent` is the agent itself",
                 "`m.sender`, `m.to`, `m.kind`", "next phase only", "`a.agent_id`, `a.action`", "trim_blocks",
                 "GENSIM_DEBUG=1", "--llm fake", "--no-dry-run", "id_digits", "neighbours(sim", "StepContext[YourWorld]",
                 'sim.add_hook("before_round"', "RunOptions(hooks=", "`update(data)` on its copy",
                 "`self.sim.intervention`", "`ctx.intervention`", "returns `(profile, extra)`", "`list[int]`",
                 "`dict[str, list[str]]`", "simulation/CHANGELOG.md"):
        assert fact in text, fact


def test_guide_documents_every_memory_field():
    from simulation.config.models import MemoryConfig, ReflectionConfig

    text = GUIDE.read_text()
    table = text.split("### Memory", 1)[1].split("## 5.", 1)[0]
    for name, f in MemoryConfig.model_fields.items():
        if name == "reflection":
            for sub, g in ReflectionConfig.model_fields.items():
                assert f"`reflection.{sub}` | {g.default} |" in table, sub
        else:
            assert f"`{name}`" in table and str(f.default) in table, name


def test_check_dry_run_catches_code_that_crashes(tmp_path, capsys, monkeypatch):
    """``check --no-dry-run`` passes a setup that raises; ``check`` (the dry run is on by default) runs it
    on the fake model and names the file and line, as it does for a step that raises; the failed run's
    folder is kept."""
    import tempfile

    from simulation.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the kept scratch folders land here

    code = PROBE.replace('        SEEN["profiles"] = sim.profiles("person")[:2]',
                         '        SEEN["profiles"] = sim.profiles("person")[:2]\n        {}["missing"]')
    folder = _probe(tmp_path, "probe_setup_bug", code)
    assert main(["check", str(folder), "--no-dry-run"]) == 0
    capsys.readouterr()
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    line = PROBE.splitlines().index('        SEEN["profiles"] = sim.profiles("person")[:2]') + 2
    assert len(err) == 1 and "setup failed at scenario.py:" + str(line) in err[0] and "KeyError" in err[0], err
    kept = sorted(tmp_path.glob("gensim-dry-run-*"))
    assert len(kept) == 1 and str(kept[0]) in err[0] and (kept[0] / "run" / "run.log").exists(), err

    code = PROBE.replace('        SEEN.setdefault("later", []).extend(ctx.inbox)', '        ctx.inbox[5]')
    folder = _probe(tmp_path, "probe_step_bug", code)
    assert main(["check", str(folder), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "phase later" in err[0] and "IndexError" in err[0] and "scenario.py:" in err[0], err
