"""A crash in the environment's own code stops the run as one in an agent step does: ``file:line``,
exit 4, the traceback in ``run.log``, nothing checkpointed for the broken round."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulation.cli import main
from tests.conftest import EXAMPLES
from tests.runs import done

BUGS = {  # method -> (the line that raises, what the scenario's Town method starts with)
    "observe": "    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:\n",
    "metrics": "    def metrics(self, round_: int) -> dict[str, float]:\n",
    "phases": "    def phases(self, round_: int) -> list[Phase]:\n",
}


@pytest.mark.parametrize("method", sorted(BUGS) + ["route", "world_update"])
def test_environment_bug_names_file_and_line(tmp_path, capsys, method):
    folder = tmp_path / f"poll_{method}"
    shutil.copytree(EXAMPLES / "polling", folder, ignore=shutil.ignore_patterns("__pycache__"))
    src = folder / "scenario.py"
    text = src.read_text()
    if method in BUGS:
        head = BUGS[method]
        assert head in text
        # phases must work in round 1's check by gensim; it breaks from round 2 on
        text = text.replace(head, head + "        if round_ == 2:\n            raise KeyError('broken_' + 'env')\n")
    else:
        anchor = "    def world(self) -> PollParams:\n"
        assert anchor in text
        sig = {"route": "def route(self, phase, messages):\n        if phase.name:\n",
               "world_update": "def world_update(self, round_):\n        if round_ == 2:\n"}[method]
        text = text.replace(anchor, f"    {sig}            raise KeyError('broken_' + 'env')\n        return None\n\n"
                            + anchor)
    src.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "broken_" in t)
    run = tmp_path / "run"
    capsys.readouterr()
    code = main(["run", str(folder), "--llm", "fake", "--agents", "4", "--rounds", "2", "--out", str(run),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4, err
    assert len(err) == 1 and f"the environment's {method} failed in round" in err[0], err
    assert f"scenario.py:{line}" in err[0] and "KeyError: 'broken_env'" in err[0], err
    assert "Traceback" in (run / "run.log").read_text() and "broken_" in (run / "run.log").read_text()
    assert not done(run, 2)
    assert Path(run / "run.sqlite").is_file()


def test_world_update_contract_bug_is_named(tmp_path, capsys):
    """``world_update`` returns data that the world's own ``update(data)`` applies in every group."""
    folder = tmp_path / "poll_update"
    shutil.copytree(EXAMPLES / "polling", folder, ignore=shutil.ignore_patterns("__pycache__"))
    src = folder / "scenario.py"
    anchor = "    def world(self) -> PollParams:\n"
    src.write_text(src.read_text().replace(anchor, "    def world_update(self, round_):\n        return {'x': 1}\n\n" + anchor))
    capsys.readouterr()
    assert main(["run", str(folder), "--llm", "fake", "--agents", "4", "--rounds", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 4
    err = capsys.readouterr().err.strip()
    assert "the environment's world update failed in round 1" in err and "AttributeError" in err and "update" in err


def test_a_scenario_written_for_the_4_tuple_action_is_told_what_changed(tmp_path, capsys):
    folder = tmp_path / "poll_old_api"
    shutil.copytree(EXAMPLES / "polling", folder, ignore=shutil.ignore_patterns("__pycache__"))
    src = folder / "scenario.py"
    head = BUGS["observe"]
    src.write_text(src.read_text().replace(head, head + "        for agent_id, name, valid, data in actions:\n"
                                                        "            pass\n"))
    capsys.readouterr()
    assert main(["run", str(folder), "--llm", "fake", "--agents", "4", "--rounds", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 4
    err = capsys.readouterr().err.strip()
    assert "too many values to unpack (expected 4)" in err and "record of 6 fields" in err and "CHANGELOG.md" in err
    assert "scenario.py:" in err
