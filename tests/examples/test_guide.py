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
