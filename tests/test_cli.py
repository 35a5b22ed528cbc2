"""Bad command lines, and run folders as inert data: one-line errors, exit 2, nothing run.

The recorded runs here use the in-process fake model (``--llm fake``): no servers, a second each.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.core.checkpoint import round_dir
from tests.conftest import copy_scenario
from tests.runs import fake_run, gensim, one_line_error


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A 2-round polling run on the fake model."""
    return fake_run(tmp_path_factory.mktemp("runs") / "polling", "polling", 8, 2)


CASES = {
    "agents_negative": (["run", "polling", "--agents", "-5"], ["--agents", "at least 1"]),
    "agents_text": (["run", "polling", "--agents", "many"], ["--agents", "whole number"]),
    "rounds_zero": (["run", "polling", "--rounds", "0"], ["--rounds", "at least 1"]),
    "unknown_option": (["run", "polling", "--colour", "red"], ["--colour"]),
    "no_scenario": (["run"], ["needs a scenario"]),
    "from_round_without_fork": (["run", "polling", "--from-round", "2"], ["--from-round", "--fork"]),
    "intervene_format": (["run", "polling", "--intervene", "soon:hello"], ["--intervene", "ROUND:TEXT"]),
    "set_format": (["run", "polling", "--set", "1:voter-1"], ["--set", "ROUND:AGENT:PATH=VALUE"]),
    "intervene_after_last_round": (["run", "polling", "--rounds", "2", "--intervene", "9:news"],
                                   ["--intervene", "round 9", "last round (2)"]),
    "llm_backend_unknown": (["run", "polling", "--llm", "oracle"], ["--llm", "oracle"]),
    "interview_not_a_run": (["interview", "/nonexistent-run", "voter-1", "hi"], ["not a run folder"]),
    "rate_by_unknown": (["rate", "/nonexistent-run", "--by", "astrology"], ["--by", "astrology"]),
    "check_unknown_scenario": (["check", "no_such_scenario"], ["no_such_scenario", "scenario"]),
    "resume_not_a_run": (["run", "--resume", "/nonexistent-run"], ["config.json", "not a run folder"]),
    "train_missing_data": (["train", "sft", "--data", "/nonexistent.jsonl", "--out", "/tmp/never"],
                           ["/nonexistent.jsonl"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_command_line_is_one_line(capsys, case):
    args, parts = CASES[case]
    line = one_line_error(capsys, *args)
    for part in parts:
        assert part in line, (part, line)


def test_resume_with_replay_or_wrong_scenario_is_refused(capsys, recorded, tmp_path):
    line = one_line_error(capsys, "run", "--resume", str(recorded), "--replay", str(recorded))
    assert "--resume" in line and "--replay" in line
    # the scenario argument is not ignored: it must be the recorded one
    line = one_line_error(capsys, "run", "job_seeking", "--resume", str(recorded))
    assert "recorded with scenario 'polling', not 'job_seeking'" in line
    line = one_line_error(capsys, "run", "job_seeking", "--replay", str(recorded), "--out", str(tmp_path / "r"))
    assert "not 'job_seeking'" in line and not (tmp_path / "r").exists()


def test_subprocess_error_has_no_traceback():
    p = subprocess.run([sys.executable, "-m", "simulation.cli", "run", "polling", "--agents", "-5"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "--agents" in p.stderr


def _plant(run: Path, evil: Path) -> Path:
    """Point a copy of a run folder's config at a scenario folder that records being imported."""
    evil.mkdir(parents=True)
    marker = evil / "IMPORTED"
    (evil / "scenario.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (evil / "configs").mkdir()
    (evil / "configs" / "simulation_config.yml").write_text("name: evil\nagents: {voter: {count: 1}}\n")
    cfg = json.loads((run / "config.json").read_text())
    cfg["scenario_dir"] = str(evil)
    (run / "config.json").write_text(json.dumps(cfg))
    return marker


def test_run_folders_never_import_the_code_they_name(capsys, recorded, tmp_path):
    import shutil

    sent = tmp_path / "sent_to_you"
    shutil.copytree(recorded, sent)
    marker = _plant(sent, sent / "payload")
    for args in (["run", "--resume", str(sent)], ["run", "--replay", str(sent), "--out", str(tmp_path / "rp")],
                 ["run", "--fork", str(sent), "--from-round", "2", "--out", str(tmp_path / "fk")],
                 ["interview", str(sent), "voter-1", "Why?"]):
        line = one_line_error(capsys, *args)
        assert "scenario_dir" in line and "never runs code a run folder names" in line, line
        assert not marker.exists(), f"{args[0:2]} imported the run folder's scenario"
    assert not (tmp_path / "rp").exists() and not (tmp_path / "fk").exists()


def test_bundled_scenario_is_found_by_name_and_a_user_scenario_by_the_path_given(recorded, tmp_path, capsys):
    """A run recorded on another machine names its checkout's path: the bundled scenario of that name
    answers. A scenario outside the bundle runs only when the user names its folder."""
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(recorded, moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["scenario_dir"] = "/elsewhere/gensim/simulation/examples/polling"
    (moved / "config.json").write_text(json.dumps(cfg))
    assert main(["run", "--replay", str(moved), "--out", str(tmp_path / "replay"), "--no-progress"]) == 0
    with sqlite3.connect(tmp_path / "replay" / "run.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM llm_calls WHERE cached = 0").fetchone()[0] == 0

    folder = copy_scenario(tmp_path, "polling")
    own = tmp_path / "own"
    assert main(["run", str(folder), "--llm", "fake", "--agents", "6", "--rounds", "1", "--out", str(own),
                 "--no-progress"]) == 0
    line = one_line_error(capsys, "run", "--replay", str(own), "--out", str(tmp_path / "r2"))
    assert str(folder) in line and "scenario_dir" in line
    assert main(["run", str(folder), "--replay", str(own), "--out", str(tmp_path / "r2"), "--no-progress"]) == 0
    assert gensim("interview", str(own), "voter-1", "Why?", "--scenario", str(folder)) == 0


def test_a_run_killed_during_setup_is_resumed_from_the_start(tmp_path, recorded):
    """No checkpoint yet: --resume runs it from the start, and it matches an uninterrupted run."""
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.json").write_text((recorded / "config.json").read_text())
    src = sqlite3.connect(recorded / "run.sqlite")
    dst = sqlite3.connect(killed / "run.sqlite")
    src.backup(dst)
    src.close()
    with dst:  # what a run stopped in setup holds: its agents and meta, no rounds, no checkpoint
        for table in ("actions", "llm_calls", "metrics", "checks"):
            dst.execute(f"DELETE FROM {table}")
        dst.execute("DELETE FROM meta WHERE key IN ('finished', 'summary')")
    dst.close()
    assert main(["run", "--resume", str(killed), "--no-progress"]) == 0
    with sqlite3.connect(killed / "run.sqlite") as a, sqlite3.connect(recorded / "run.sqlite") as b:
        q = "SELECT round, agent_id, action, data FROM actions ORDER BY round, agent_id, seq"
        assert a.execute(q).fetchall() == b.execute(q).fetchall()
        assert a.execute("SELECT MAX(round) FROM actions").fetchone()[0] == 2


def test_replay_of_an_interrupted_run_ends_where_its_recording_does(tmp_path, recorded, capsys):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(recorded, cut)
    shutil.rmtree(round_dir(cut, 2))
    with sqlite3.connect(cut / "run.sqlite") as db:
        for table in ("actions", "llm_calls", "metrics", "checks"):
            db.execute(f"DELETE FROM {table} WHERE round = 2")
        db.execute("DELETE FROM meta WHERE key IN ('finished', 'summary')")
    assert main(["run", "--replay", str(cut), "--out", str(tmp_path / "replay"), "--no-progress", "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["rounds"] == 1 and summary["failed_steps"] == 0 and "stopped after round 1 of 2" in out.err


def test_check_endpoints_probes_each_configured_endpoint(tmp_path, capsys, stub):
    from simulation.services.vllm_server import free_port
    from simulation.testing.procs import stub_models
    from tests.conftest import set_models

    folder = copy_scenario(tmp_path, "polling")
    set_models(folder, stub_models([stub], embed=stub))
    capsys.readouterr()
    assert main(["check", str(folder), "--endpoints"]) == 0
    assert "endpoints: 2 answered" in capsys.readouterr().out
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = stub_models([stub], embed=stub)
    models[0]["client_args"]["base_url"] = dead
    set_models(folder, models)
    assert main(["check", str(folder)]) == 0  # without --endpoints nothing is asked
    line = one_line_error(capsys, "check", str(folder), "--endpoints")
    assert "model_configs.json" in line and "client_args.base_url" in line and "unreachable" in line and dead in line


def _options():
    from simulation.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name, p in sub.choices.items():
        for a in p._actions:
            if a.option_strings and a.dest != "help":
                yield name, p, a


def test_every_flag_has_help_with_its_default():
    import argparse

    for name, p, a in _options():
        assert a.help, (name, a.option_strings)
        shown = p._get_formatter()._get_help_string(a)
        if a.nargs == 0 or isinstance(a, argparse.BooleanOptionalAction) and a.default is True:
            continue  # a switch: off unless given (--dry-run says it is on)
        if a.required or a.default == []:
            continue  # required, or repeatable with nothing by default
        if a.default is not None:
            assert "(default: %(default)s)" in shown or "default" in a.help, (name, a.option_strings, shown)
        else:
            assert "default" in a.help or a.option_strings[0] in ("--replay", "--resume", "--fork", "--from-round",
                                                                 "--file", "--scenario"), (name, a.option_strings)


def test_correct_help_lists_defaults(capsys):
    helps = {a.option_strings[0]: p._get_formatter()._get_help_string(a) % {"default": a.default}
             for name, p, a in _options() if name == "correct"}
    for flag, default in (("--iterations", "1"), ("--method", "sft"), ("--epochs", "1.0"),
                          ("--holdout", "0.5"), ("--max-samples", "1600"), ("--agents", "320"),
                          ("--rated-rows", "all")):
        assert helps[flag].endswith(f"(default: {default})"), (flag, helps[flag])
    for flag in ("--agents", "--lr", "--seed", "--train-seed", "--judge", "--base"):
        assert "default: " in helps[flag], flag
    assert helps["--judge-samples"].startswith("LLM calls the judge rates per run") and "(default 24;" in \
        helps["--judge-samples"]
    assert gensim("correct", "--help") == 0
    assert "--judge-samples N, --samples N" in " ".join(capsys.readouterr().out.split())


def test_judge_samples_without_a_judge_is_refused(capsys, tmp_path):
    for flag in ("--judge-samples", "--samples"):
        line = one_line_error(capsys, "correct", "job_seeking", flag, "50", "--out", str(tmp_path / "c"))
        assert line.startswith("error: --judge-samples: sizes the judge's sample, and no judge rates"), line
    assert not (tmp_path / "c").exists()


def test_a_harness_can_forbid_the_embedded_servers(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GENSIM_NO_EMBEDDED", "1")
    line = one_line_error(capsys, "run", "job_seeking", "--agents", "4", "--rounds", "1", "--out", str(tmp_path / "r"),
                          "--no-progress")
    assert line == ("error: <environment>: GENSIM_NO_EMBEDDED: set: this process may not start the embedded vLLM "
                    "servers")
    assert not (tmp_path / "r").exists()


def test_check_names_an_answer_field_no_action_has(capsys, tmp_path):
    folder = copy_scenario(tmp_path)
    checks = folder / "checks.py"
    checks.write_text(checks.read_text().replace('@check("screen", answer="result")', '@check("screen", answer="resutl")'))
    line = one_line_error(capsys, "check", str(folder))
    assert line == ("error: check screen_against_requirements: answer: 'resutl' is no field of its 'screen' actions "
                    "(they have: result, seeker)")
    capsys.readouterr()
    assert gensim("check", str(copy_scenario(tmp_path / "as_shipped"))) == 0
    assert "error" not in capsys.readouterr().err


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """``kill PID`` on a run: it stops between steps, resumable, with the interrupt's exit code (the
    embedded servers it started are stopped by the same path; without the handler they outlived it)."""
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "simulation.cli", "run", "job_seeking", "--agents", "400",
                             "--rounds", "200", "--out", str(out), "--no-progress", "llm.backend=fake"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "round_000001").is_dir() and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume" in err, err


def test_a_linear_schedule_with_ppo_is_refused_by_train_and_correct(capsys, tmp_path):
    """--lr-schedule reaches training from both commands: ppo asked for one is a one-line error."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], '
                    '"reward": 1.0}\n')
    want = "--lr-schedule: constant or linear (linear: sft only), got 'linear'"
    line = one_line_error(capsys, "train", "ppo", "--data", str(data), "--out", str(tmp_path / "a"),
                          "--lr-schedule", "linear")
    assert want in line, line
    line = one_line_error(capsys, "correct", "job_seeking", "--method", "ppo", "--lr-schedule", "linear",
                          "--out", str(tmp_path / "c"))
    assert f"{want} with ppo" in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_save_every_with_the_token_loss_is_refused_by_train_and_correct(capsys, tmp_path):
    """--save-every reaches training from both commands: snapshots come from the choice trainer only."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    line = one_line_error(capsys, "train", "sft", "--data", str(data), "--out", str(tmp_path / "a"),
                          "--save-every", "5")
    assert "--save-every: a whole number of steps, 1 or more, for sft's choices objective only; got 5 with sft tokens" \
        in line, line
    line = one_line_error(capsys, "correct", "job_seeking", "--objective", "tokens", "--save-every", "5",
                          "--out", str(tmp_path / "c"))
    assert "--save-every" in line and "got 5 with sft tokens" in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
