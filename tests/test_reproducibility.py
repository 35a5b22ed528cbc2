"""Replays, resumes and forks repeat the recorded interventions; a run folder has one writer; Ctrl-C,
a finished run and a cut-short checkpoint are handled honestly.

The live stub tags every free-text answer uniquely, so a replay or resume that silently asked a
model again would record different text and fail these comparisons.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulation.core.checkpoint import DRIVER, round_dir
from simulation.store import RunLock
from simulation.testing.procs import stub_stats
from tests.runs import CALLS, done, gensim, rows

NEWS = "A new factory opened in town."
INTERVENTIONS = "SELECT round, kind, target, data FROM interventions WHERE kind != 'deploy' ORDER BY id"
ROOT = Path(__file__).resolve().parent.parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meta(run: Path) -> dict:
    return {k: json.loads(v) for k, v in rows(run, "SELECT key, value FROM meta")}


@pytest.fixture()
def intervened(stub_scenario, tmp_path) -> Path:
    """A 3-round live run with a global intervention and an attribute change in round 2."""
    run = tmp_path / "parent"
    assert gensim("run", str(stub_scenario), "--agents", "20", "--rounds", "3", "--out", str(run), "--no-progress",
                  "--intervene", f"2:{NEWS}", "--set", "2:seeker-03:desired_salary=123457") == 0
    return run


def test_replay_repeats_the_recorded_interventions_and_refuses_other_ones(stub, stub_scenario, intervened, tmp_path,
                                                                         capsys):
    asked = stub_stats(stub)["chat"]
    replay = tmp_path / "replay"
    assert gensim("run", str(stub_scenario), "--replay", str(intervened), "--out", str(replay), "--no-progress") == 0
    assert stub_stats(stub)["chat"] == asked, "a replay asks no model"
    assert rows(replay, CALLS) == rows(intervened, CALLS) and rows(replay) == rows(intervened)
    assert rows(replay, INTERVENTIONS) == rows(intervened, INTERVENTIONS)
    # the same flags again are accepted; other ones are refused up front, naming them, and make no folder
    again = tmp_path / "again"
    assert gensim("run", str(stub_scenario), "--replay", str(intervened), "--out", str(again), "--no-progress",
                  "--intervene", f"2:{NEWS}", "--set", "2:seeker-03:desired_salary=123457") == 0
    assert rows(again, CALLS) == rows(intervened, CALLS)
    capsys.readouterr()
    other = tmp_path / "other"
    assert gensim("run", str(stub_scenario), "--replay", str(intervened), "--out", str(other), "--no-progress",
                  "--intervene", "3:Something else") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not recorded: --intervene 3:Something else" in err
    assert "recorded but not given: --intervene 2:" + NEWS in err and not other.exists()


def test_fork_repeats_the_parents_interventions(stub, stub_scenario, intervened, tmp_path):
    asked = stub_stats(stub)["chat"]
    fork = tmp_path / "fork"
    assert gensim("run", str(stub_scenario), "--fork", str(intervened), "--from-round", "2", "--replay", str(intervened),
                  "--out", str(fork), "--no-progress") == 0
    assert stub_stats(stub)["chat"] == asked
    assert rows(fork, CALLS) == rows(intervened, CALLS)
    assert rows(fork, INTERVENTIONS) == rows(intervened, INTERVENTIONS)
    # a live fork with a change keeps the parent's interventions too
    live = tmp_path / "live"
    assert gensim("run", str(stub_scenario), "--fork", str(intervened), "--from-round", "2", "llm.max_tokens=20",
                  "--out", str(live), "--no-progress") == 0
    prompts = [p for (p,) in rows(live, "SELECT prompt FROM llm_calls WHERE round = 2 AND action NOT LIKE 'memory.%'")]
    assert prompts and all(NEWS in p for p in prompts)
    assert rows(live, INTERVENTIONS) == rows(intervened, INTERVENTIONS)


def test_resume_continues_the_schedule_it_was_started_with(stub_scenario, tmp_path):
    from simulation.runner import RunOptions, run_simulation

    def stop_after_one(sim, r):
        if r == 1:
            sim.request_stop()

    run = tmp_path / "run"
    import asyncio

    asyncio.run(run_simulation(RunOptions(scenario=str(stub_scenario), agents=20, rounds=3, out=str(run), progress=False,
                                          interventions=[(3, NEWS)], hooks={"after_round": [stop_after_one]})))
    assert done(run, 1) and not done(run, 2)
    assert gensim("run", str(stub_scenario), "--resume", str(run), "--no-progress") == 0
    prompts = {r: [p for (p,) in rows(run, "SELECT prompt FROM llm_calls WHERE round = ? AND action NOT LIKE "
                                           "'memory.%' AND phase != 'interview'", r)] for r in (2, 3)}
    assert prompts[3] and all(NEWS in p for p in prompts[3]) and not any(NEWS in p for p in prompts[2])


def test_a_resume_may_move_the_recorded_models_to_other_addresses(stub_scenario, stub, tmp_path, capsys):
    """An experiment's shared servers start again on other ports when it resumes a run: ``model_config=``
    moves the recorded models there (and may not change them)."""
    import asyncio

    from simulation.runner import RunOptions, run_simulation
    from simulation.testing.procs import start_stub, stub_models

    def stop_after_one(sim, r):
        if r == 1:
            sim.request_stop()

    run = tmp_path / "run"
    asyncio.run(run_simulation(RunOptions(scenario=str(stub_scenario), agents=12, rounds=3, out=str(run),
                                          progress=False, hooks={"after_round": [stop_after_one]})))
    assert done(run, 1) and not done(run, 2)
    other = start_stub(live=True)
    try:
        moved = tmp_path / "moved.json"
        moved.write_text(json.dumps(stub_models([other], embed=other)))
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps([{**m, "model_name": "another"} for m in stub_models([other], embed=other)]))
        capsys.readouterr()
        assert gensim("run", "--resume", str(run), f"model_config={wrong}", "--no-progress") == 2
        err = capsys.readouterr().err
        assert "not change them" in err and "another" in err and "Traceback" not in err
        before = stub_stats(stub)["chat"]
        assert gensim("run", str(stub_scenario), "--resume", str(run), f"model_config={moved}", "--no-progress") == 0
        assert done(run, 3)
        assert stub_stats(other)["chat"] > 0 and stub_stats(stub)["chat"] == before, "rounds 2-3 asked the new address"
    finally:
        other.stop()


def test_a_replay_that_leaves_its_recording_says_what_differs(stub_scenario, tmp_path, capsys):
    run = tmp_path / "run"
    assert gensim("run", str(stub_scenario), "--agents", "12", "--rounds", "1", "--out", str(run), "--no-progress") == 0
    template = stub_scenario / "prompts" / "search.j2"
    template.write_text(template.read_text().replace("\n", "\nRemember: be brief.\n", 1))
    capsys.readouterr()
    assert gensim("run", str(stub_scenario), "--replay", str(run), "--out", str(tmp_path / "r"), "--no-progress") == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "left its recording" in err and "(key " in err and "Remember: be brief." in err
    assert "differs at prompt line" in err and "cache.py" not in err and "failed" not in err.split("stopped:")[1][:20]


def test_one_process_per_run_folder(stub_scenario, tmp_path, capsys):
    run = tmp_path / "run"
    assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "1", "--out", str(run),
                  "--no-progress") == 0
    before = digest(run / "run.sqlite")
    # another process holds the folder (flock is per open file: a child process shows it across processes)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from simulation.store import RunLock; RunLock(sys.argv[1], 'test').acquire(); "
        "print('held', flush=True); time.sleep(60)"), str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["run", "--resume", str(run)], ["rate", str(run), "--by", "checks"],
                     ["interview", str(run), "voter-1", "How are you?"]):
            capsys.readouterr()
            assert gensim(*args, *(["--no-progress"] if args[0] == "run" else [])) == 2, args
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"in use by pid {holder.pid} (test)" in err, err
        # reading it stays allowed: a fork of it, and an export
        assert gensim("run", "--fork", str(run), "--from-round", "1", "--out", str(tmp_path / "f"), "--no-progress") == 0
        assert gensim("export", str(run), "--out", str(tmp_path / "x")) == 0
    finally:
        holder.kill()
        holder.wait()
    assert digest(run / "run.sqlite") == before
    with RunLock(run):  # free again once the holder is gone (the kernel drops a dead process's lock)
        pass


def test_ctrl_c_exits_130_and_says_how_to_resume(stub_scenario, tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "simulation.cli", "run", str(stub_scenario), "--agents", "20",
                          "--rounds", "40", "--out", str(run), "--no-progress"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not done(run, 1) and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert done(run, 1) and p.poll() is None
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted after round ") and f"gensim run --resume {run}" in last
    stopped = int(last.split("after round ")[1].split()[0])
    assert 1 <= stopped < 40 and done(run, stopped) and not done(run, stopped + 1)
    assert "Summary" in out and not meta(run)["finished"] and meta(run)["stopped"]["round"] == stopped + 1


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "2", "--out", str(run),
                  "--no-progress") == 0
    before = {f: digest(run / f) for f in ("run.sqlite", "config.json", "run.log")}
    capsys.readouterr()
    assert gensim("run", "--resume", str(run), "--no-progress") == 0
    assert "finished all 2 rounds: nothing to resume" in capsys.readouterr().out
    assert {f: digest(run / f) for f in before} == before


@pytest.mark.parametrize("victim", ["group_0000.msgpack", DRIVER])
def test_a_cut_short_checkpoint_is_named_and_the_previous_one_used(tmp_path, capfd, victim):
    whole, run = tmp_path / "whole", tmp_path / "run"
    for d in (whole, run):
        assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "3", "--out", str(d),
                      "--no-progress") == 0
    f = round_dir(run, 3) / victim
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    capfd.readouterr()
    assert gensim("run", "--resume", str(run), "--no-progress") == 0
    err = capfd.readouterr().err
    assert "checkpoint round_000003 skipped" in err and str(f) in err
    assert rows(run) == rows(whole), "round 3 was run again from round 2's checkpoint"
    assert rows(run, "SELECT round FROM actions WHERE round = 3")


def test_set_is_checked_against_the_profile(tmp_path, capsys):
    for arg, words in (("1:voter-1:age=old", ["'age' is a whole number", '"old"']),
                       ("1:voter-1:agee=30", ["has no field 'agee'", "age"]),
                       ("1:voter-9:age=30", ["no agent 'voter-9'"])):
        out = tmp_path / arg.replace(":", "_")
        capsys.readouterr()
        assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "1", "--out", str(out),
                      "--no-progress", "--set", arg) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
        assert not out.exists(), "bad input leaves no half-made run folder"
    ok = tmp_path / "ok"
    assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "1", "--out", str(ok),
                  "--no-progress", "--set", "1:voter-1:age=30") == 0


def test_fork_past_the_last_round_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert gensim("run", "polling", "--llm", "fake", "--agents", "6", "--rounds", "2", "--out", str(run),
                  "--no-progress") == 0
    capsys.readouterr()
    assert gensim("run", "--fork", str(run), "--from-round", "3", "--out", str(tmp_path / "f"), "--no-progress") == 2
    err = capsys.readouterr().err
    assert "past" in err and "last recorded round is 2" in err and not (tmp_path / "f").exists()
    assert os.listdir(tmp_path) == ["run"]


def test_an_interrupt_outside_the_round_loop_names_the_resume_command(tmp_path):
    import asyncio

    from simulation.runner import Interrupted, RunOptions, run_simulation

    def ctrl_c(sim, r):
        if r == 2:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(Interrupted) as e:
        asyncio.run(run_simulation(RunOptions(scenario="polling", overrides=["llm.backend=fake"], agents=4, rounds=3,
                                              out=str(run), progress=False, hooks={"before_round": [ctrl_c]})))
    assert str(e.value) == f"interrupted after round 1 of 3 (checkpointed); to go on: gensim run --resume {run}"
    assert gensim("run", "--resume", str(run), "--no-progress") == 0 and done(run, 3)
