"""Job seeking on the real embedded default: CPU vLLM with SmolLM2-135M and the embedding server.

Runs last among the integration tests: it stops both servers to replay the run with none running.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from simulation.cli import main
from tests.integration.conftest import real_scenario

pytestmark = pytest.mark.integration


def test_job_seeking_real_model_then_offline_replay(real_servers, tmp_path, capsys):
    chat, emb = real_servers
    folder = real_scenario(real_servers, tmp_path)
    run = tmp_path / "run"
    assert main(["run", str(folder), "--agents", "20", "--rounds", "2", "--out", str(run), "--no-progress"]) == 0
    db = sqlite3.connect(run / "run.sqlite")
    actions = db.execute("SELECT action, valid, data FROM actions").fetchall()
    assert actions and all(v == 1 for _, v, _ in actions), [a for a in actions if a[1] != 1][:5]
    kinds = {a for a, _, _ in actions}
    assert "search_decision" in kinds
    for a, _, d in actions:
        data = json.loads(d)
        if a == "screen":
            assert data["result"] in ("pass", "reject")
        if a == "offer_decision":
            assert data["result"] in ("offer", "reject")
            # the interviewer's own answer, which the offer check grades; an offer needs a "hire"
            assert data["decision"] in ("hire", "keep looking", None)
            assert data["result"] == "reject" or data["decision"] == "hire"
    calls = db.execute("SELECT prompt_tokens, completion_tokens, error, endpoint, agent_id FROM llm_calls").fetchall()
    assert len(calls) >= 20
    assert all(p > 0 and c > 0 and e is None and ep == chat.base_url and aid for p, c, e, ep, aid in calls)
    metrics = {(r, n) for r, n in db.execute("SELECT round, name FROM metrics")}
    for r in (1, 2):
        for n in ("employment_rate", "applications", "screenings_passed", "interviews", "offers", "acceptances"):
            assert (r, n) in metrics
    assert db.execute("SELECT COUNT(*) FROM agents").fetchone()[0] == 20
    recorded = db.execute("SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id").fetchall()
    db.close()

    chat.stop()
    emb.stop()
    replay = tmp_path / "replay"
    assert main(["run", str(folder), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    with sqlite3.connect(replay / "run.sqlite") as db2:
        assert db2.execute("SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id").fetchall() == recorded
        assert db2.execute("SELECT COUNT(*) FROM llm_calls WHERE cached = 0").fetchone()[0] == 0
