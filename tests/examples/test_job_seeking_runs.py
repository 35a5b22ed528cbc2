"""Job seeking end to end against stub servers: metrics, replay, failover mid-run, kill -9 and resume.

The stubs run in live mode: every free-text answer carries a tag unique to the call, so a replay or
a resume that quietly asks the server again cannot reproduce a recording. Two live runs take the
same path (decisions do not depend on the tags) and are compared with the tags normalised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from simulation.cli import main
from simulation.core.checkpoint import latest_checkpoint, read_checkpoint, round_dir
from simulation.testing.procs import start_stub, stub_models, stub_stats
from tests.conftest import copy_scenario, set_models
from tests.runs import CALLS, METRICS, count, done, duplicates, normalised, normalised_state, rows


def gensim(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simulation.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def expected_metrics(run: Path) -> dict[tuple[int, str], float]:
    """Each round's job-seeking metrics recomputed from the recorded actions alone."""
    seekers = count(run, "agents", "WHERE agent_type = 'seeker'")
    out: dict[tuple[int, str], float] = {}
    employed: set[str] = set()
    for r in sorted({r for (r,) in rows(run, "SELECT DISTINCT round FROM actions")}):
        acts = [(a, act, json.loads(d)) for a, act, d in rows(run, "SELECT agent_id, action, data FROM actions "
                                                                   "WHERE round = ? ORDER BY id", r)]
        n = Counter(act for _, act, _ in acts)
        employed |= {a for a, act, _ in acts if act == "accept"}
        out.update({(r, "searches"): n["search"], (r, "applications"): n["apply"], (r, "screenings"): n["screen"],
                    (r, "screenings_passed"): sum(act == "screen" and d["result"] == "pass" for _, act, d in acts),
                    (r, "interviews"): n["interview"],
                    (r, "offers"): sum(act == "offer_decision" and d["result"] == "offer" for _, act, d in acts),
                    (r, "acceptances"): n["accept"], (r, "employment_rate"): len(employed) / seekers})
    return out


def test_run_records_everything_and_replay_reproduces(stub, stub_scenario, tmp_path, capsys):
    run, replay = tmp_path / "run", tmp_path / "replay"
    # 30 agents: enough that the stub's hashed decisions make hires (16 happened to make none)
    assert main(["run", str(stub_scenario), "--rounds", "3", "--agents", "30", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for key in ("agents", "applications", "offers", "hires", "llm calls", "tokens", "wall s", "run dir"):
        assert key in out
    recorded = rows(run)
    assert recorded and all(r[4] == 1 for r in recorded)
    calls = rows(run, "SELECT prompt_tokens, completion_tokens, error FROM llm_calls")
    assert calls and all(p > 0 and c > 0 and e is None for p, c, e in calls)
    # every metric, every round, equals what the recorded actions say
    expected = expected_metrics(run)
    metrics = {(r, n): v for r, n, v in rows(run, METRICS)}
    assert {k: metrics[k] for k in expected} == expected
    assert expected[(3, "employment_rate")] > 0 and expected[(1, "applications")] > 0
    assert done(run, 3) and (run / "config.json").exists()
    asked = stub_stats(stub)["chat"]
    assert main(["run", str(stub_scenario), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    assert rows(replay) == recorded
    assert rows(replay, CALLS) == rows(run, CALLS)
    assert count(replay, "llm_calls", "WHERE cached = 0") == 0 and stub_stats(stub)["chat"] == asked


def test_plain_openai_server_records_failures_and_replays_them(tmp_path):
    """No structured outputs: choices and JSON are repaired or fail, and a replay takes the same path."""
    plain = start_stub(extras=False, live=True)
    try:
        folder = copy_scenario(tmp_path)
        set_models(folder, stub_models([plain], embed=plain, vllm_extras="auto"))
        run, replay = tmp_path / "r", tmp_path / "replay"
        # applications as one JSON answer (the list form), so both kinds of structured call are exercised
        assert main(["run", str(folder), "--rounds", "2", "--agents", "20", "--out", str(run), "--no-progress",
                     "scenario.applications=list"]) == 0
        structured = rows(run, "SELECT choices IS NOT NULL, valid, repairs FROM llm_calls "
                               "WHERE choices IS NOT NULL OR json_schema IS NOT NULL")
        outcomes = Counter(structured)
        assert outcomes[(1, 1, 1)] > 0, "choices recovered from prose by the repair step"
        assert sum(n for (c, v, _), n in outcomes.items() if c and not v) > 0, "some choices stay off-menu"
        assert outcomes[(0, 1, 1)] > 0, "JSON recovered from prose by the repair step"
        asked = stub_stats(plain)["chat"]
        assert main(["run", str(folder), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    finally:
        plain.stop()
    assert rows(replay) == rows(run)
    assert rows(replay, CALLS) == rows(run, CALLS)
    assert count(replay, "llm_calls", "WHERE cached = 0") == 0 and asked > 0


def test_endpoint_killed_mid_run_loses_no_step(tmp_path):
    a, b, emb = start_stub(live=True), start_stub(live=True), start_stub()
    try:
        folder = copy_scenario(tmp_path)
        set_models(folder, stub_models([a, b], embed=emb))
        run = tmp_path / "run"
        p = gensim("run", str(folder), "--agents", "400", "--rounds", "3", "--out", str(run), "--no-progress", "--json")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill endpoint a once the run is well under way
            if httpx.get(f"http://127.0.0.1:{a.spec.port}/stats").json()["chat"] > 150:
                break
            time.sleep(0.02)
        b_at_kill = stub_stats(b)["chat"]
        os.kill(a.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["failed_steps"] == 0
        endpoints = dict(rows(run, "SELECT endpoint, COUNT(*) FROM llm_calls GROUP BY endpoint"))
        after_kill = stub_stats(b)["chat"] - b_at_kill
        assert endpoints.get(a.base_url, 0) > 0 and after_kill > 100, "b took over the calls a would have had"
        assert endpoints[b.base_url] + endpoints[a.base_url] == count(run, "llm_calls")
        assert count(run, "llm_calls", "WHERE error IS NOT NULL") == 0 and not duplicates(run)
        assert done(run, 3)
    finally:
        for s in (a, b, emb):
            s.stop()


def kill_mid_round(p: subprocess.Popen, run: Path, first_round: int, stub=None) -> int:
    """SIGKILL ``p`` once rows of round ``first_round`` or later are on disk; return the interrupted round.

    With a ``stub``, its gate first parks every further call, so the round cannot end meanwhile.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and count(run, "actions", f"WHERE round >= {first_round}") == 0:
        time.sleep(0.005)
    if stub is not None:
        httpx.post(f"{stub.base_url.removesuffix('/v1')}/hold", json={"after": 0})
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    if stub is not None:
        httpx.post(f"{stub.base_url.removesuffix('/v1')}/release")
    found = latest_checkpoint(run)
    assert found is not None
    last = found[0]
    assert count(run, "llm_calls", f"WHERE round > {last}") > 0, "killed between rounds, not mid-round"
    assert count(run, "actions", f"WHERE round > {last}") > 0
    return last + 1


def test_live_run_killed_mid_round_then_resumed_equals_uninterrupted(stub, stub_scenario, tmp_path):
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    args = ["--agents", "300", "--rounds", "4", "--no-progress"]
    assert main(["run", str(stub_scenario), *args, "--out", str(full)]) == 0
    p = gensim("run", str(stub_scenario), *args, "--out", str(crashed))
    cut = kill_mid_round(p, crashed, 3, stub)
    assert cut <= 4
    asked = stub_stats(stub)["chat"]
    assert main(["run", str(stub_scenario), "--resume", str(crashed), "--no-progress"]) == 0
    # every call after the checkpoint was asked again exactly once: nothing of the killed round is kept
    assert stub_stats(stub)["chat"] - asked == count(crashed, "llm_calls", f"WHERE round >= {cut}")
    assert not duplicates(crashed)
    assert normalised(rows(crashed)) == normalised(rows(full))
    assert rows(crashed, METRICS) == rows(full, METRICS)
    assert normalised(rows(crashed, CALLS)) == normalised(rows(full, CALLS))
    a, b = read_checkpoint(round_dir(crashed, 4)), read_checkpoint(round_dir(full, 4))
    assert normalised_state(a["agents"]) == normalised_state(b["agents"]) and a["env"] == b["env"]


def test_replay_killed_mid_round_resumes_from_the_recording(stub, stub_scenario, tmp_path):
    rec, crashed = tmp_path / "rec", tmp_path / "crashed"
    assert main(["run", str(stub_scenario), "--agents", "300", "--rounds", "4", "--out", str(rec), "--no-progress"]) == 0
    asked = stub_stats(stub)["chat"]
    p = gensim("run", str(stub_scenario), "--replay", str(rec), "--out", str(crashed), "--no-progress")
    kill_mid_round(p, crashed, 3)
    # the live stub is still up: a resume that went live would get new answers, and be counted
    assert main(["run", str(stub_scenario), "--resume", str(crashed), "--no-progress"]) == 0
    assert stub_stats(stub)["chat"] == asked
    assert rows(crashed) == rows(rec)
    assert rows(crashed, METRICS) == rows(rec, METRICS)
    assert rows(crashed, CALLS) == rows(rec, CALLS) and not duplicates(crashed)
    a, b = read_checkpoint(round_dir(crashed, 4)), read_checkpoint(round_dir(rec, 4))
    assert a["agents"] == b["agents"] and a["env"] == b["env"]
