"""What stops a run and what does not: scenario bugs stop it loudly and it resumes after the fix;
failures on the model's side are counted up to a share; no decision is made for the model; an
endpoint outage is waited out, or stops the run before the broken round is checkpointed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from simulation.cli import main
from simulation.core.checkpoint import latest_checkpoint, read_checkpoint, round_dir
from simulation.testing.procs import start_stub, stub_models
from tests.conftest import EXAMPLES, set_models
from tests.runs import CALLS, METRICS, count, done, duplicates, normalised, normalised_state, rows

FAST_FAIL = ["llm.max_retries=1", "llm.backoff_base_s=0", "llm.backoff_max_s=0.1"]


def scenario_copy(tmp: Path, folder: str) -> Path:
    """A copy of job seeking under a folder name of its own (scenario modules are cached by folder name)."""
    dst = tmp / folder
    shutil.copytree(EXAMPLES / "job_seeking", dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def gensim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulation.cli", *args], capture_output=True, text=True, timeout=600)


def test_scenario_bug_stops_the_run_then_resumes_after_the_fix(stub, tmp_path):
    folder = scenario_copy(tmp_path, "js_bug")
    set_models(folder, stub_models([stub], embed=stub))
    agents = folder / "agents.py"
    good = agents.read_text()
    anchor = "    async def screen(self, ctx: StepContext[JobBoard]) -> None:\n"
    bug = '        if ctx.round == 2 and self.id == "interviewer-3":\n            self.profile["salary_floor"]\n'
    line = good[: good.index(anchor)].count("\n") + 3
    agents.write_text(good.replace(anchor, anchor + bug))
    run, full = tmp_path / "run", tmp_path / "full"
    p = gensim("run", str(folder), "--rounds", "3", "--out", str(run), "--no-progress")
    assert p.returncode == 4, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in p.stderr, p.stderr
    for part in ("interviewer-3", "round 2", "phase screen", f"agents.py:{line}", "KeyError", "salary_floor",
                 "run.log"):
        assert part in err[0], (part, err[0])
    log = (run / "run.log").read_text()
    assert "Traceback (most recent call last)" in log and f'agents.py", line {line}' in log
    # everything recorded so far is kept; round 2 was not checkpointed
    assert latest_checkpoint(run)[0] == 1 and count(run, "llm_calls", "WHERE round = 2") > 0
    agents.write_text(good)
    assert gensim("run", str(folder), "--resume", str(run), "--no-progress").returncode == 0
    assert gensim("run", str(folder), "--rounds", "3", "--out", str(full), "--no-progress").returncode == 0
    assert normalised(rows(run)) == normalised(rows(full)) and rows(run, METRICS) == rows(full, METRICS)
    assert normalised(rows(run, CALLS)) == normalised(rows(full, CALLS)) and not duplicates(run)


def test_misspelled_phase_method_is_a_check_error(tmp_path, capsys):
    folder = scenario_copy(tmp_path, "js_typo")
    env = folder / "environment.py"
    env.write_text(env.read_text().replace('Phase("screen", "interviewer", "screen", "inbox")',
                                           'Phase("screen", "interviewer", "scren", "inbox")'))
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "environment.py" in err[0] and "(screen).method" in err[0] \
        and "InterviewerAgent has no method 'scren'" in err[0], err


def test_model_side_failures_are_counted_and_the_run_goes_on(tmp_path):
    flaky, emb = start_stub(live=True, fail_share=0.02), start_stub()
    try:
        folder = scenario_copy(tmp_path, "js_flaky")
        set_models(folder, stub_models([flaky], embed=emb))
        run = tmp_path / "run"
        p = gensim("run", str(folder), "--agents", "200", "--rounds", "2", "--out", str(run), "--no-progress",
                   "--json", "max_failed_step_share=0.2", *FAST_FAIL)
        assert p.returncode == 0, p.stderr[-2000:]
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        failed = count(run, "actions", "WHERE action = 'llm_failure'")
        assert summary["failed_steps"] == failed > 0 and done(run, 2)
        assert count(run, "llm_calls", "WHERE error LIKE 'LLMError: giving up%'") >= failed
        # the same failures with no share allowed: the run stops before checkpointing round 1
        strict = tmp_path / "strict"
        p = gensim("run", str(folder), "--agents", "200", "--rounds", "2", "--out", str(strict), "--no-progress",
                   "max_failed_step_share=0", *FAST_FAIL)
        assert p.returncode == 4 and "failed on the model's side" in p.stderr and "max_failed_step_share" in p.stderr
        assert latest_checkpoint(strict)[0] == 0
    finally:
        flaky.stop()
        emb.stop()


def test_no_decision_is_taken_for_a_model_that_answers_off_menu(stub, tmp_path):
    odd = start_stub(off_menu=True)
    try:
        results = {}
        for name, server in (("sane", stub), ("odd", odd)):
            folder = scenario_copy(tmp_path, f"js_{name}")
            set_models(folder, stub_models([server], embed=stub))
            run = tmp_path / name
            assert main(["run", str(folder), "--agents", "40", "--rounds", "2", "--out", str(run),
                         "--no-progress"]) == 0
            results[name] = run
    finally:
        odd.stop()
    sane, bad = results["sane"], results["odd"]
    hires = "WHERE action = 'hire'"
    assert count(sane, "actions", hires) > 0 and count(bad, "actions", hires) == 0
    decisions = rows(bad, "SELECT valid, data FROM actions WHERE action = 'search_decision'")
    assert decisions and all(v == 0 and json.loads(d)["search"] is None for v, d in decisions)
    assert count(bad, "actions", "WHERE action IN ('search', 'apply', 'screen', 'offer_decision')") == 0
    # the model's raw answers are kept, with the repair that was tried
    failed = rows(bad, "SELECT completion, valid, repairs, attempts, finish_reason, completion_tokens, error "
                       "FROM llm_calls WHERE choices IS NOT NULL AND action = 'search_decision'")
    assert failed and all(c == "Hmm, hard to say." and v == 0 and r == 1 and a == 2 and f == "stop" and t > 0
                          and e.startswith("StructuredOutputError") for c, v, r, a, f, t, e in failed)
    out = main(["run", str(folder), "--replay", str(bad), "--out", str(tmp_path / "replay"), "--no-progress"])
    assert out == 0 and rows(tmp_path / "replay", CALLS) == rows(bad, CALLS)


def wait_for_rows(run: Path, where: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and count(run, "llm_calls", where) == 0:
        time.sleep(0.01)


def test_endpoint_outage_is_waited_out_or_stops_before_the_checkpoint(tmp_path):
    """Kill the only chat endpoint mid-round. Back after 60 s: the run carries on. With a 5 s outage
    limit: the run stops, round 2 is not checkpointed, and a resume redoes it. Both equal an
    uninterrupted run."""
    chat, emb = start_stub(live=True), start_stub()
    port = chat.spec.port
    folder = scenario_copy(tmp_path, "js_outage")
    set_models(folder, stub_models([chat], embed=emb))
    args = ["--agents", "200", "--rounds", "3", "--no-progress"]
    full, waited, stopped = tmp_path / "full", tmp_path / "waited", tmp_path / "stopped"
    try:
        assert main(["run", str(folder), *args, "--out", str(full)]) == 0
        p = subprocess.Popen([sys.executable, "-m", "simulation.cli", "run", str(folder), *args, "--out", str(waited)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_rows(waited, "WHERE round = 2")
        os.kill(chat.pid, signal.SIGKILL)
        time.sleep(60)
        chat = start_stub(live=True, port=port)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert "no chat endpoint is answering" in err
        p = subprocess.Popen([sys.executable, "-m", "simulation.cli", "run", str(folder), *args, "--out", str(stopped),
                              "llm.outage_limit_s=5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_rows(stopped, "WHERE round = 2")
        os.kill(chat.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 4 and "no chat endpoint answered" in err and "--resume" in err, err[-2000:]
        assert latest_checkpoint(stopped)[0] == 1
        chat = start_stub(live=True, port=port)
        assert gensim("run", str(folder), "--resume", str(stopped), "--no-progress").returncode == 0
    finally:
        chat.stop()
        emb.stop()
    for run in (waited, stopped):
        assert not duplicates(run) and count(run, "llm_calls", "WHERE error IS NOT NULL") == 0
        assert normalised(rows(run)) == normalised(rows(full)) and rows(run, METRICS) == rows(full, METRICS)
        assert normalised(rows(run, CALLS)) == normalised(rows(full, CALLS))
        a, b = read_checkpoint(round_dir(run, 3)), read_checkpoint(round_dir(full, 3))
        assert normalised_state(a["agents"]) == normalised_state(b["agents"]) and a["env"] == b["env"]
