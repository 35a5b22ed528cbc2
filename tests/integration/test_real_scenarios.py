"""Recommendation, chatting and the guide's polling example on the real small model (short runs)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter

import pytest

from simulation.cli import main
from tests.conftest import copy_scenario, set_models
from tests.integration.conftest import real_models

pytestmark = pytest.mark.integration

CASES = {
    "recommendation": (["--agents", "12", "scenario.catalogue_size=300"], ["mean_rating", "genre_entropy", "chats", "posts"]),
    "chatting": ([], ["messages", "mentions", "goodbyes"]),
    "polling": ([], ["share_yes", "share_no", "share_unsure"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_scenario_on_the_real_model(real_servers, tmp_path, name):
    chat, emb = real_servers
    folder = copy_scenario(tmp_path, name)
    set_models(folder, real_models(chat, emb))
    run = tmp_path / "run"
    extra, names = CASES[name]
    assert main(["run", str(folder), *extra, "--rounds", "2", "--out", str(run), "--no-progress"]) == 0
    with sqlite3.connect(run / "run.sqlite") as db:
        actions = db.execute("SELECT round, action, valid, data FROM actions").fetchall()
        calls = db.execute("SELECT prompt_tokens, completion_tokens, error, endpoint FROM llm_calls").fetchall()
        metrics = {(r, n) for r, n in db.execute("SELECT round, name FROM metrics")}
    assert actions and all(v == 1 for _, _, v, _ in actions), [a for a in actions if a[2] != 1][:3]
    assert calls and all(p > 0 and c > 0 and e is None and ep == chat.base_url for p, c, e, ep in calls)
    assert all((r, n) in metrics for r in (1, 2) for n in names)
    kinds = Counter(a for _, a, _, _ in actions)
    if name == "recommendation":
        assert kinds["watch"] + kinds["chat"] + kinds["post"] + kinds["feel"] + kinds["rate"] >= 24  # one per user and round
        for _, a, _, d in actions:
            if a == "rate":
                assert json.loads(d)["stars"] in [x / 2 for x in range(1, 11)]
    if name == "chatting":
        texts = [json.loads(d)["text"] for _, a, _, d in actions if a == "say"]
        assert texts and all(t.strip() for t in texts)
        assert not [t for t in texts if re.match(r"[A-Z][\w'-]+ [A-Z][\w'-]+\s*:", t)], "nobody writes in another's name"
    if name == "polling":
        assert kinds["vote"] == 20 and {json.loads(d)["answer"] for _, a, _, d in actions if a == "vote"} <= {"yes", "no", "unsure"}
