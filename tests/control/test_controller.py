"""The live-run controller: pause, interview, intervene, change an attribute, resume, stop, and resume
the stopped folder with ``run_simulation`` (as ``gensim run --resume`` does)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from simulation.control import ControlError, RunController
from simulation.runner import RunOptions, run_simulation

NEWS = "A new factory opened in town and is hiring."


def q(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(sql))


def wait_for(ctl: RunController, pred, timeout: float = 120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = ctl.status()
        if pred(st):
            return st
        if st.state in ("failed", "finished", "stopped") and not pred(st):
            raise AssertionError(f"run ended as {st.state}: {st.error}")
        time.sleep(0.05)
    raise AssertionError(f"timed out; status {ctl.status()}")


def test_pause_act_resume_stop_then_resume_the_folder(stub_scenario, tmp_path):
    run = tmp_path / "run"
    ctl = RunController()
    with pytest.raises(ControlError, match="no live run"):
        ctl.intervene(NEWS)
    with pytest.raises(ControlError):
        ctl.pause()
    ctl.start(RunOptions(scenario=str(stub_scenario), rounds=20, out=str(run)))
    with pytest.raises(ControlError, match="already live"):
        ctl.start(RunOptions(scenario=str(stub_scenario), rounds=4, out=str(tmp_path / "other")))
    st = wait_for(ctl, lambda s: s.round >= 1)
    t0 = time.monotonic()
    while (mid := ctl.status()).phase is None and time.monotonic() - t0 < 30:
        pass  # a phase is in progress most of a round's time
    assert mid.phase and mid.phase_no >= 1 and mid.round_started and mid.round_started >= mid.started
    t0 = time.monotonic()
    while (mid := ctl.status()).steps[0] == 0 and time.monotonic() - t0 < 30:
        pass  # the phase's steps, counted as they end
    done, scheduled = mid.steps
    assert mid.phase and 0 < done <= scheduled, mid
    ctl.pause()
    st = wait_for(ctl, lambda s: s.state == "paused")
    held = st.round
    assert st.phase is None and st.phase_no == 0, "between rounds no phase is in progress"
    time.sleep(1.0)
    assert ctl.status().round == held and ctl.status().state == "paused", "a paused run starts no round"
    answer = ctl.interview("seeker-01", "How is your search going?")
    assert answer
    assert ctl.intervene(NEWS) == held + 1
    assert ctl.set_attribute("seeker-03", "desired_salary", 123457) == held + 1
    with pytest.raises(ValueError, match="desired_salary"):
        ctl.set_attribute("seeker-03", "desired_salary", "lots")
    with pytest.raises(KeyError, match="nobody"):
        ctl.interview("nobody", "hi")
    ctl.resume()
    wait_for(ctl, lambda s: s.round >= held + 1)
    ctl.stop()
    st = ctl.wait(120)
    assert st.state == "stopped" and st.round < 20, st
    meta = dict(q(run, "SELECT key, value FROM meta"))
    assert json.loads(meta["stopped"])["reason"] == "stopped from the web interface"
    assert json.loads(meta["finished"]) is False
    rows = {(r, k, t): json.loads(d) for r, k, t, d in q(run, "SELECT round, kind, target, data FROM interventions")}
    assert rows[(held + 1, "global", "*")] == {"text": NEWS}
    assert rows[(held + 1, "attribute", "seeker-03")] == {"path": "desired_salary", "value": 123457}
    assert rows[(held, "interview", "seeker-01")]["answer"] == answer
    prompts = q(run, f"SELECT prompt FROM llm_calls WHERE round = {held + 1} AND action NOT LIKE 'memory.%' "
                     "AND phase != 'interview'")
    assert prompts and all(NEWS in p for (p,) in prompts)
    # the stopped folder is an ordinary interrupted run: a resume finishes it
    summary = asyncio.run(run_simulation(RunOptions(scenario=str(stub_scenario), resume=str(run), progress=False)))
    assert summary["rounds"] == 20
    assert json.loads(dict(q(run, "SELECT key, value FROM meta"))["finished"]) is True


def test_a_bad_config_fails_with_its_message(stub_scenario, tmp_path):
    ctl = RunController()
    ctl.start(RunOptions(scenario=str(stub_scenario), rounds=2, out=str(tmp_path / "run"), overrides=["seed=-x"]))
    st = ctl.wait(60)
    assert st.state == "failed" and "seed" in (st.error or "")
    assert not (tmp_path / "run").exists(), "bad input leaves no half-made folder"
