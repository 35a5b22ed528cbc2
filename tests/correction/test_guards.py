"""Tests that guard what the correction work relies on: the check metrics' values, preference pairs'
sides, adapters by agent type, ratings of a forked run, and schema mode after a truncated answer."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from simulation.cli import main
from simulation.llm import ChatRequest, OpenAIChatClient, StructuredClient
from simulation.services.vllm_server import free_port
from tests.runs import fake_run, rows


def q(run: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(sql, args))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Job seeking on the fake model, 3 rounds: every check covers some actions."""
    return fake_run(tmp_path_factory.mktemp("runs") / "js", agents=30, rounds=3)


def test_check_fail_rates_are_the_checks_tables_shares(run):
    metrics = {(r, n): v for r, n, v in q(run, "SELECT round, name, value FROM metrics WHERE name LIKE 'check.%'")}
    verdicts = q(run, "SELECT round, check_name, COUNT(*), SUM(ok = 0) FROM checks GROUP BY round, check_name")
    assert verdicts and any(failed for *_, failed in verdicts), "some check fails on the fake model's answers"
    for r, name, covered, failed in verdicts:
        assert metrics[(r, f"check.{name}.covered")] == covered
        assert metrics[(r, f"check.{name}.fail_rate")] == pytest.approx(failed / covered, abs=1e-6)
    seen = {(r, n) for r, n, *_ in verdicts}
    for (r, name), v in metrics.items():  # a check that covered nothing in a round reads 0, not a made-up rate
        check = name.split(".")[1]
        if (r, check) not in seen:
            assert v == 0.0, (r, name)


def test_preference_pairs_choose_the_rewrite_over_the_recorded_answer(run, tmp_path):
    calls = q(run, "SELECT id, prompt, completion, choices FROM llm_calls WHERE action = 'screen' AND valid = 1 "
                   "ORDER BY id LIMIT 4")
    ratings = tmp_path / "people.jsonl"
    with open(ratings, "w") as f:
        for cid, _, completion, choices in calls:
            other = next(c for c in json.loads(choices) if c != completion)
            f.write(json.dumps({"llm_call_id": cid, "score": 1, "rewrite": other, "reason": "test"}) + "\n")
    copy = tmp_path / "rated"
    import shutil

    shutil.copytree(run, copy)
    assert main(["rate", str(copy), "--by", "file", "--file", str(ratings)]) == 0
    out = tmp_path / "pref.jsonl"
    assert main(["dataset", str(copy), "--kind", "preference", "--out", str(out), "--rater", "human:"]) == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pairs) == len(calls)
    by_call = {cid: (json.loads(prompt), completion, choices) for cid, prompt, completion, choices in calls}
    for p in pairs:
        prompt, recorded, choices = by_call[p["meta"]["call_id"]]
        assert p["prompt"] == prompt, "the prompt is the call's own"
        assert p["rejected"] == [{"role": "assistant", "content": recorded}]
        assert p["chosen"][0]["content"] != recorded and p["chosen"][0]["content"] in json.loads(choices)


def test_an_adapter_for_one_agent_type_reaches_that_type_only(stub_scenario, tmp_path):
    from tests.core.test_deploy import fake_adapter

    adapter = fake_adapter(tmp_path / "ad" / "fix")
    out = tmp_path / "run"
    assert main(["run", str(stub_scenario), "--agents", "20", "--rounds", "1", "--out", str(out), "--no-progress",
                 f"llm.adapter={adapter}", "llm.adapter_name=fixed", "llm.adapter_types=[seeker]"]) == 0
    models = dict(q(out, "SELECT a.agent_type, GROUP_CONCAT(DISTINCT l.model) FROM llm_calls l "
                         "JOIN agents a ON a.agent_id = l.agent_id GROUP BY a.agent_type"))
    assert models["seeker"] == "fixed" and "fixed" not in models["interviewer"].split(","), models


def test_a_fork_keeps_ratings_only_of_the_calls_it_did_not_re_run(run, tmp_path):
    import shutil

    parent = tmp_path / "parent"
    shutil.copytree(run, parent)
    assert main(["rate", str(parent), "--by", "checks"]) == 0
    by_round = dict(q(parent, "SELECT l.round, COUNT(*) FROM ratings r JOIN llm_calls l ON l.id = r.llm_call_id "
                              "GROUP BY l.round"))
    assert by_round.get(1) and by_round.get(2), "the parent has ratings of rounds 1 and 2"
    fork = tmp_path / "fork"
    assert main(["run", "--fork", str(parent), "--from-round", "2", "--out", str(fork), "--no-progress"]) == 0
    kept = q(fork, "SELECT r.llm_call_id, r.rater, r.score, l.round, l.key FROM ratings r "
                   "LEFT JOIN llm_calls l ON l.id = r.llm_call_id ORDER BY r.id")
    assert kept and all(rnd == 1 for *_, rnd, _ in kept), "only round-1 calls, which the fork copied, keep ratings"
    parent_r1 = q(parent, "SELECT r.llm_call_id, r.rater, r.score, l.round, l.key FROM ratings r "
                          "JOIN llm_calls l ON l.id = r.llm_call_id WHERE l.round = 1 ORDER BY r.id")
    assert kept == parent_r1, "each kept rating still points at the same call"


@pytest.fixture()
async def truncating_server():
    """Honours JSON schemas, but its first answer is cut short (finish_reason length)."""
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        truncated = len(seen) == 1
        text = '{"apply": [' if truncated else '{"apply": [1]}'
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "length" if truncated else "stop"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", chat)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_schema_mode_survives_a_truncated_first_answer(truncating_server):
    url, seen = truncating_server
    http = OpenAIChatClient(url, "m", vllm_extras=False)
    client = StructuredClient(http, max_repairs=1)
    schema = {"type": "object", "properties": {"apply": {"type": "array", "items": {"type": "integer"}}},
              "required": ["apply"]}
    res = await client.complete(ChatRequest([{"role": "user", "content": "apply?"}], json_schema=schema))
    assert json.loads(res.text) == {"apply": [1]} and res.repairs == 1
    # a cut-short answer says nothing about schema support: the endpoint keeps asking with the schema
    assert http.mode == "schema" and all("response_format" in b for b in seen) and len(seen) == 2
    await client.complete(ChatRequest([{"role": "user", "content": "again?"}], json_schema=schema))
    assert http.mode == "schema" and "response_format" in seen[-1]
    await http.aclose()


def test_recorded_rows_name_the_call_behind_each_check(run):
    """Each check verdict names the calls behind its action; the check_calls view resolves them."""
    linked = rows(run, "SELECT check_name, action, llm_call_id, choices FROM check_calls")
    assert linked and all(cid is not None for _, _, cid, _ in linked)
    actions = {name: act for name, act, *_ in linked}
    assert actions.get("screen_against_requirements", "screen") == "screen"
