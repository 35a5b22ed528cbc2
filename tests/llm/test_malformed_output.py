"""A misbehaving OpenAI-compatible server: the run finishes, every bad answer is repaired or counted,
and retries are bounded by the configured timeout and retry count. Also the portable structured path:
a llama.cpp-like server gets JSON schemas; a server that ignores them gets prompt-and-repair."""

from __future__ import annotations

import json
import sqlite3
import time

from simulation.cli import main
from simulation.testing.procs import start_stub, stub_models, stub_stats
from tests.conftest import copy_scenario, set_models

BOUNDED = ["llm.timeout_s=1.5", "llm.max_retries=3", "llm.backoff_base_s=0.05", "llm.backoff_max_s=0.2",
           "max_failed_step_share=1.0"]


def test_every_misbehaviour_is_repaired_or_counted_and_retries_are_bounded(tmp_path, capsys):
    bad = start_stub(misbehave="all", misbehave_share=0.35)
    emb = start_stub()
    try:
        folder = copy_scenario(tmp_path, "job_seeking")
        set_models(folder, stub_models([bad], embed=emb))
        run = tmp_path / "run"
        t0 = time.monotonic()
        code = main(["run", str(folder), "--agents", "40", "--rounds", "2", "--out", str(run), "--no-progress",
                     "--json", *BOUNDED])
        wall = time.monotonic() - t0
        out = capsys.readouterr()
        assert code == 0, out.err[-2000:]
        faults = stub_stats(bad)["misbehaved"]
    finally:
        bad.stop()
        emb.stop()
    assert set(faults) == {"empty", "null", "offmenu", "badjson", "length", "nousage", "400", "429", "500", "drop",
                           "html", "slow"}, faults
    summary = json.loads(out.out.strip().splitlines()[-1])
    with sqlite3.connect(run / "run.sqlite") as db:
        rows = db.execute("SELECT valid, error, finish_reason, latency_ms, attempts FROM llm_calls").fetchall()
    # nothing silently defaulted: a call is valid, or invalid with its error recorded
    assert rows and all(v == 1 or e for v, e, *_ in rows)
    assert summary["invalid_calls"] == sum(v == 0 for v, *_ in rows) > 0
    assert "invalid calls" in out.out and summary["truncated_calls"] > 0
    assert any(f == "length" for _, _, f, _, _ in rows)
    assert any(a > 1 for *_, a in rows), "no call was retried"
    # a 10 s reply is cut at the 1.5 s timeout and retried: no call waits much past its retry budget
    budget_ms = 4 * (1.5 + 0.2) * 1000 + 2000
    assert max(lat for *_, lat, _ in rows) < budget_ms and wall < 240
    assert summary["failed_steps"] > 0  # the HTTP 400s: counted, not hidden
    assert "Traceback" not in out.err


def _job_seeking_on(server, tmp_path, rounds: int) -> dict:
    """Run 20 job seekers against ``server`` (chat and embeddings) into ``tmp_path/run``, stop the
    server, and return its counters."""
    try:
        folder = copy_scenario(tmp_path, "job_seeking")
        set_models(folder, stub_models([server], embed=server))
        assert main(["run", str(folder), "--agents", "20", "--rounds", str(rounds), "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 0
        return stub_stats(server)
    finally:
        server.stop()


def test_llamacpp_like_server_gets_json_schemas(tmp_path, capsys):
    """No /version, honours response_format only: every choice and JSON answer valid without repair."""
    stats = _job_seeking_on(start_stub(schema_only=True), tmp_path, rounds=2)
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        bad = db.execute("SELECT COUNT(*) FROM llm_calls WHERE valid = 0 OR repairs > 0").fetchone()[0]
        structured = db.execute("SELECT COUNT(*) FROM llm_calls WHERE choices IS NOT NULL OR json_schema IS NOT NULL"
                                ).fetchone()[0]
    assert structured > 0 and bad == 0
    assert stats.get("response_format", 0) >= structured and "structured_outputs" not in stats
    assert "asked for in the prompt" not in capsys.readouterr().err


def test_server_ignoring_schemas_falls_back_to_prose_once(tmp_path, capsys):
    stats = _job_seeking_on(start_stub(extras=False), tmp_path, rounds=1)
    err = capsys.readouterr().err
    assert err.count("ignores response_format") == 1, err
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        repaired = db.execute("SELECT COUNT(*) FROM llm_calls WHERE repairs > 0").fetchone()[0]
    # after the first structured answers, no more schemas are sent: prose and repair
    assert repaired > 0 and stats.get("response_format", 0) < stats["chat"] / 2
