"""Ratings from checks, a judge and a file, and the three dataset kinds, on a recorded stub run."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest

from simulation.cli import main
from simulation.testing.procs import start_stub, stub_models
from tests.conftest import copy_scenario, set_models
from tests.runs import count, rows


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One 80-agent live stub run for the module (its stub stays up: the judge test asks it)."""
    stub = start_stub(live=True)
    try:
        tmp = tmp_path_factory.mktemp("rated")
        folder = copy_scenario(tmp)
        set_models(folder, stub_models([stub], embed=stub))
        run = tmp / "run"
        assert main(["run", str(folder), "--agents", "80", "--rounds", "2", "--out", str(run), "--no-progress"]) == 0
        yield run
    finally:
        stub.stop()


@pytest.fixture()
def rated_run(recorded, tmp_path):
    """A copy of the recorded run for one test to rate."""
    run = tmp_path / "run"
    shutil.copytree(recorded, run)
    return run


def test_check_ratings_are_linked_to_the_calls_behind_each_action(rated_run, capsys):
    before = rows(rated_run, "SELECT * FROM llm_calls ORDER BY id")
    assert main(["rate", str(rated_run), "--by", "checks"]) == 0
    assert "ratings_added=" in capsys.readouterr().out
    linked = rows(rated_run, "SELECT r.rater, r.score, r.rewrite, l.action, l.choices FROM ratings r "
                             "JOIN llm_calls l ON l.id = r.llm_call_id")
    expected_call = {"check:duplicate_application": "apply", "check:low_salary_application": "apply",
                     "check:screen_against_requirements": "screen", "check:offer_against_requirements": "offer_decision",
                     "check:accepted_lower_offer": "respond_offers", "check:accepted_far_below_desired": "respond_offers",
                     "check:declined_desired_pay": "respond_offers", "check:applied_low_salary": "apply_posting",
                     "check:skipped_fitting_posting": "apply_posting"}
    assert linked and {rater for rater, *_ in linked} <= set(expected_call)
    for rater, score, rewrite, action, choices in linked:
        assert action == expected_call[rater] and score in (1.0, 5.0)
        if rewrite is not None and choices:
            assert rewrite in json.loads(choices), "a rewrite is one of the call's own options"
    assert any(score == 1.0 for _, score, *_ in linked) and any(score == 5.0 for _, score, *_ in linked)
    # every failing check row became a low rating of its call
    failed = count(rated_run, "checks", "WHERE ok = 0")
    assert failed == sum(1 for _, score, *_ in linked if score == 1.0)
    n = count(rated_run, "ratings")
    assert main(["rate", str(rated_run), "--by", "checks"]) == 0 and count(rated_run, "ratings") == n  # idempotent
    assert rows(rated_run, "SELECT * FROM llm_calls ORDER BY id") == before, "rating never changes what was recorded"


def test_every_dataset_kind_loads_with_hugging_face_datasets(rated_run, tmp_path, capsys):
    assert main(["rate", str(rated_run), "--by", "checks"]) == 0
    for kind, keys in (("sft", {"messages", "meta"}), ("preference", {"prompt", "chosen", "rejected", "meta"}),
                       ("reward", {"prompt", "completion", "reward", "meta"})):
        out = tmp_path / f"{kind}.jsonl"
        assert main(["dataset", str(rated_run), "--kind", kind, "--out", str(out)]) == 0, capsys.readouterr().err
        ds = datasets.load_dataset("json", data_files=str(out), split="train")
        assert len(ds) > 0 and set(ds.column_names) == keys
        row = ds[0]
        assert row["meta"]["rater"].startswith("check:") and row["meta"]["call_id"] > 0
        if kind == "sft":
            assert row["messages"][-1]["role"] == "assistant" and row["messages"][0]["role"] == "system"
        if kind == "preference":
            assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
        if kind == "reward":
            assert set(ds["reward"]) <= {1.0, 5.0}


def test_human_ratings_from_a_file_and_the_errors_they_get(rated_run, tmp_path, capsys):
    call, choices = rows(rated_run, "SELECT id, choices FROM llm_calls WHERE action = 'screen' LIMIT 1")[0]
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"llm_call_id": call, "score": 2, "rewrite": json.loads(choices)[1], "reason": "x"}) + "\n")
    assert main(["rate", str(rated_run), "--by", "file", "--file", str(good)]) == 0
    assert rows(rated_run, "SELECT rater, score FROM ratings") == [("human:good", 2.0)]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"llm_call_id,score,rewrite\n{call},9,\n999999,3,\n{call},,maybe\n")
    capsys.readouterr()
    assert main(["rate", str(rated_run), "--by", "file", "--file", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "line 2: score" in err[0] and "line 3: llm_call_id" in err[1] and "line 4: rewrite" in err[2]
    assert count(rated_run, "ratings") == 1, "a bad file adds nothing"


def test_datasets_refuse_empty_or_contradictory_ratings(rated_run, tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    assert main(["dataset", str(rated_run), "--kind", "sft", "--out", str(out)]) == 2
    assert "rate the run first" in capsys.readouterr().err and not out.exists()
    call, choices = rows(rated_run, "SELECT id, choices FROM llm_calls WHERE action = 'screen' LIMIT 1")[0]
    a, b = json.loads(choices)[:2]
    f = tmp_path / "two.jsonl"
    f.write_text(json.dumps({"llm_call_id": call, "rewrite": a, "rater": "human:ann"}) + "\n" +
                 json.dumps({"llm_call_id": call, "rewrite": b, "rater": "human:bob"}) + "\n")
    assert main(["rate", str(rated_run), "--by", "file", "--file", str(f)]) == 0
    capsys.readouterr()
    assert main(["dataset", str(rated_run), "--kind", "sft", "--out", str(out)]) == 2
    assert "contradicting rewrites" in capsys.readouterr().err
    assert main(["dataset", str(rated_run), "--kind", "sft", "--out", str(out), "--rater", "human:ann"]) == 0


def test_judge_scores_and_rewrites_within_the_calls_own_options(rated_run, stub_scenario, capsys):
    assert main(["rate", str(rated_run), "--by", "judge", "--judge", "stub-0", "--sample", "12", "--seed", "3",
                 "--scenario", str(stub_scenario)]) == 0
    assert "judge_gave_no_score=0" in capsys.readouterr().out
    got = rows(rated_run, "SELECT r.rater, r.score, r.rewrite, l.choices, l.json_schema, l.action FROM ratings r "
                          "JOIN llm_calls l ON l.id = r.llm_call_id")
    assert len(got) == 12 and all(rater == "judge:stub-0" and score in (1, 2, 3, 4, 5) for rater, score, *_ in got)
    assert len({a for *_, a in got}) > 1, "the sample spreads over actions"
    for _, _, rewrite, choices, schema, _ in got:
        assert rewrite is not None
        if choices:
            assert rewrite in json.loads(choices)
        elif schema:
            json.loads(rewrite)
    capsys.readouterr()
    assert main(["rate", str(rated_run), "--by", "judge", "--judge", "nobody", "--scenario", str(stub_scenario)]) == 2
    assert "no chat model named 'nobody'" in capsys.readouterr().err
    # the rubric is the scenario's, so a run of an unbundled scenario needs the folder named
    assert main(["rate", str(rated_run), "--by", "judge", "--judge", "stub-0"]) == 2
    assert "--scenario FOLDER" in capsys.readouterr().err


def _sft(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_corrections_anchors_and_balance(rated_run, tmp_path):
    from simulation.correction import dataset_rows

    assert main(["rate", str(rated_run), "--by", "checks"]) == 0
    plain = dataset_rows(rated_run, "sft", rater="check:")
    # a call that some check corrected trains on the correction alone
    corrected = dict(rows(rated_run, "SELECT llm_call_id, rewrite FROM ratings WHERE rewrite IS NOT NULL"))
    by_call: dict[int, list[str]] = {}
    for r in plain:
        by_call.setdefault(r["meta"]["call_id"], []).append(r["messages"][-1]["content"])
    assert all(len(v) == 1 for v in by_call.values()), "one answer per call"
    assert corrected and all(by_call[c] == [rw] for c, rw in corrected.items() if c in by_call)
    low = {c for (c,) in rows(rated_run, "SELECT llm_call_id FROM ratings WHERE score < 4")}
    assert all(c in corrected for c in by_call if c in low), "no answer a check failed is kept"
    # a person scores a call low that a check passed, without a rewrite: its answer is no longer kept
    passed = sorted(c for c in by_call if c not in corrected and c not in low)
    assert passed
    (tmp_path / "human.csv").write_text(f"llm_call_id,score\n{passed[0]},1\n")
    assert main(["rate", str(rated_run), "--by", "file", "--file", str(tmp_path / "human.csv")]) == 0
    everyone = {r["meta"]["call_id"] for r in dataset_rows(rated_run, "sft")}
    assert passed[0] not in everyone and passed[1] in everyone

    anchored = dataset_rows(rated_run, "sft", rater="check:", anchor=True)
    anchors = [r for r in anchored if r["meta"]["rater"] == "anchor"]
    rated_actions = {r["meta"]["action"] for r in plain}
    assert anchors and not {r["meta"]["action"] for r in anchors} & rated_actions
    calls = {i: (json.loads(ch), c) for i, ch, c in rows(
        rated_run, "SELECT id, choices, completion FROM llm_calls WHERE choices IS NOT NULL")}
    for r in anchors:
        options, _ = calls[r["meta"]["call_id"]]
        assert r["messages"][-1]["content"] in options
    assert dataset_rows(rated_run, "sft", rater="check:", anchor=True) == anchored, "seeded"

    balanced = dataset_rows(rated_run, "sft", rater="check:", balance=True)
    def spread(rs):
        out: dict[tuple, int] = {}
        for r in rs:
            k = (r["meta"]["action"], r["messages"][-1]["content"])
            out[k] = out.get(k, 0) + 1
        return out
    before, after = spread(plain), spread(balanced)
    assert set(before) == set(after) and all(after[k] >= before[k] for k in before)
    assert all(after[k] <= 4 * before[k] for k in before)
    assert any(after[k] > before[k] for k in before), "the rarer answers are repeated"
    held = {r["meta"]["call_id"] for r in plain[:5]}
    agents = {a for (i, a) in rows(rated_run, "SELECT id, agent_id FROM llm_calls") if i in held}
    kept = dataset_rows(rated_run, "sft", rater="check:", exclude_agents=agents)
    assert kept and not {r["meta"]["call_id"] for r in kept} & held
