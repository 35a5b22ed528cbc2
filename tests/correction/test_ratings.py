"""Ratings in isolation: rewrites that are valid, idempotent storage, check verdicts as ratings, the
judge's sample, and the judge's two questions, with a scripted model."""

from __future__ import annotations

import asyncio
import json

import pytest

from simulation.correction.ratings import (
    BAD,
    GOOD,
    JUDGE_SYSTEM,
    Call,
    Rating,
    add_ratings,
    judge_call,
    load_calls,
    ratings_from_checks,
    ratings_from_judge,
    render_call,
    sample_calls,
    valid_rewrite,
)
from simulation.llm.structured import StructuredOutputError
from simulation.llm.types import ChatResult, LLMError
from simulation.store import RunStore

MSGS = [{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Hire?"}]


def mk(i: int, action: str = "screen", choices: list[str] | None = None, schema: dict | None = None,
       completion: str = "pass", agent: str = "a") -> Call:
    return Call(i, 1, "p", agent, action, MSGS, completion, choices, schema, True)


def test_valid_rewrite():
    choice, js, text = mk(1, choices=["pass", "reject"]), mk(2, schema={"type": "object"}), mk(3)
    assert valid_rewrite(choice, None) and valid_rewrite(choice, "reject") and not valid_rewrite(choice, "maybe")
    assert valid_rewrite(js, '{"a": 1}') and valid_rewrite(js, 'Sure: {"a": 1}') and not valid_rewrite(js, "no json")
    assert valid_rewrite(text, "a sentence") and not valid_rewrite(text, "   ")
    assert render_call(choice) == "[system] You are Ann.\n[user] Hire?"


def row(agent: str, action: str, seq: int, choices: list[str] | None) -> tuple:
    return (1, "p", agent, action, seq, f"k{agent}{seq}", json.dumps(MSGS), "pass",
            json.dumps(choices) if choices else None, None, "e", 1.0, 1, 1, 0, 1, 0, 1, None, "stop", None)


@pytest.fixture()
def store(tmp_path):
    s = RunStore(tmp_path / "run.sqlite")
    s.add_rows((), [row("a", "screen", 0, ["pass", "reject"]), row("a", "note", 1, None),
                    row("b", "screen", 0, ["pass", "reject"]), row("c", "apply", 0, None)])
    s.flush()
    with s.db:
        s.db.executemany("INSERT INTO checks (round, phase, agent_id, act_seq, action, check_name, ok, reason, rewrite, "
                         "calls) VALUES (?,?,?,?,?,?,?,?,?,?)", [
                             (1, "p", "a", 0, "screen", "req", 0, "lacks a degree", "reject", "[0, 1]"),
                             (1, "p", "b", 0, "screen", "req", 1, "", None, "[0]"),
                             (1, "p", "c", 0, "apply", "twice", 0, "", '{"apply":[1]}', "[0]"),
                             (2, "p", "b", 0, "screen", "req", 0, "x", "reject", "[0]")])
    yield s
    s.close()


def test_check_verdicts_become_ratings_of_the_calls_behind_them(store):
    got = [(r.llm_call_id, r.rater, r.score, r.rewrite, r.reason) for r in ratings_from_checks(store)]
    # the failed screen of a links two calls: the choice call gets the rewrite, the free-text one cannot
    assert got == [(1, "check:req", BAD, "reject", "lacks a degree"), (2, "check:req", BAD, None, "lacks a degree"),
                   (3, "check:req", GOOD, None, "passed"), (4, "check:twice", BAD, '{"apply":[1]}', "failed")]
    assert [r.llm_call_id for r in ratings_from_checks(store, action="apply")] == [4]
    assert [r.llm_call_id for r in ratings_from_checks(store, round_=1)] == [1, 2, 3, 4]
    assert ratings_from_checks(store, round_=2) == [], "round 2's verdict names no recorded call"


def test_add_ratings_is_idempotent_per_rater(store):
    rs = [Rating(1, "human:ann", 2.0, "reject", "why"), Rating(1, "human:bob", 4.0), Rating(3, "human:ann", None, "pass")]
    assert add_ratings(store, rs) == 3
    assert add_ratings(store, rs + [Rating(2, "human:ann", 5.0)]) == 1
    got = list(store.db.execute("SELECT llm_call_id, rater, score, rewrite, reason, created IS NOT NULL FROM ratings "
                                "ORDER BY id"))
    assert got == [(1, "human:ann", 2.0, "reject", "why", 1), (1, "human:bob", 4.0, None, "", 1),
                   (3, "human:ann", None, "pass", "", 1), (2, "human:ann", 5.0, None, "", 1)]
    assert [c.id for c in load_calls(store, "WHERE action = ?", ("screen",))] == [1, 3]


def test_sample_calls_is_seeded_spread_and_puts_failed_first():
    calls = [mk(i, "screen") for i in range(1, 21)] + [mk(i, "apply") for i in range(21, 25)]
    s = sample_calls(calls, 8, seed=1)
    assert len(s) == 8 and [c.id for c in s] == sorted(c.id for c in s)
    assert sum(c.action == "apply" for c in s) == 4, "spread evenly over actions while they last"
    assert [c.id for c in sample_calls(calls, 8, seed=1)] == [c.id for c in s]
    assert [c.id for c in sample_calls(calls, 8, seed=2)] != [c.id for c in s]
    first = sample_calls(calls, 3, seed=1, failed_first={5, 6, 7, 8})
    assert len(first) == 3 and {c.id for c in first} <= {5, 6, 7, 8}
    mixed = sample_calls(calls, 6, seed=1, failed_first={5})
    assert 5 in {c.id for c in mixed} and sum(c.id == 5 for c in mixed) == 1
    assert len(sample_calls(calls, 100, seed=1)) == len(calls)


class Scripted:
    """Answers the judge's score question with ``score`` and the rewrite question with ``better``."""

    def __init__(self, score: str | Exception, better: str | Exception = "reject"):
        self.score, self.better, self.requests = score, better, []

    async def complete(self, req):
        self.requests.append(req)
        out = self.score if req.choices == ["1", "2", "3", "4", "5"] else self.better
        if isinstance(out, Exception):
            raise out
        return ChatResult(text=out)


def test_judge_asks_a_score_then_a_rewrite_within_the_calls_options():
    call = mk(7, choices=["pass", "reject"])
    client = Scripted("2", " reject ")
    r = asyncio.run(judge_call(client, call, "Hire only with a degree.", '{"name": "Ann"}', rewrite=True))
    assert r == Rating(7, "", 2.0, "reject", "judged against the rubric")
    score_req, rewrite_req = client.requests
    assert score_req.messages[0] == {"role": "system", "content": JUDGE_SYSTEM} and score_req.max_tokens == 4
    text = score_req.messages[1]["content"]
    for part in ('Agent profile: {"name": "Ann"}', "[user] Hire?", "The agent answered: 'pass'",
                 "Rubric: Hire only with a degree.", "from 1 (wrong for this person) to 5"):
        assert part in text, part
    assert rewrite_req.choices == ["pass", "reject"] and rewrite_req.max_tokens == 48
    assert "Give the answer this person should have given" in rewrite_req.messages[1]["content"]
    # no rewrite asked; a rewrite off the options, an empty one or a failed one is dropped
    assert asyncio.run(judge_call(Scripted("5"), call, "r", "p", rewrite=False)).rewrite is None
    assert len(Scripted("5").requests) == 0
    for better in ("maybe", "  ", StructuredOutputError("off")):
        got = asyncio.run(judge_call(Scripted("1", better), call, "r", "p", rewrite=True))
        assert got is not None and got.score == 1.0 and got.rewrite is None
    assert asyncio.run(judge_call(Scripted(StructuredOutputError("off")), call, "r", "p", rewrite=True)) is None


def test_ratings_from_judge_names_the_rater_and_drops_failures():
    calls = [mk(1, choices=["pass", "reject"]), mk(2, choices=["pass", "reject"], agent="b")]

    class PerCall(Scripted):
        async def complete(self, req):
            if "[user] Hire?" in req.messages[1]["content"] and "Bob" in req.messages[1]["content"]:
                raise LLMError("endpoint down")
            return await super().complete(req)

    seen = []
    out = asyncio.run(ratings_from_judge(calls, PerCall("4"), "judge:j", lambda c: f"rubric {c.action}",
                                         lambda a: seen.append(a) or ("Bob" if a == "b" else "Ann"), progress=False))
    assert [(r.llm_call_id, r.rater, r.score, r.rewrite) for r in out] == [(1, "judge:j", 4.0, "reject")]
    assert sorted(seen) == ["a", "b"]


def _file(tmp_path, name: str, text: str | bytes):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def _problems(store, path) -> list[tuple[str, str, str]]:
    from simulation.config import ConfigError
    from simulation.correction.ratings import ratings_from_file

    with pytest.raises(ConfigError) as e:
        ratings_from_file(store, path)
    return [(p.file, p.field, p.reason) for p in e.value.problems]


def test_ratings_file_refusals_exactly(store, tmp_path):
    nope = tmp_path / "nope.csv"
    assert _problems(store, nope) == [(str(nope), "--file", "file not found")]
    empty = _file(tmp_path, "empty.jsonl", "\n  \n")
    assert _problems(store, empty) == [(str(empty), "", "no ratings in the file")]
    header = _file(tmp_path, "header.csv", "llm_call_id,score\n")
    assert _problems(store, header) == [(str(header), "", "no ratings in the file")]
    latin = _file(tmp_path, "latin.csv", "llm_call_id,reason\n1,caf\xe9\n".encode("latin-1"))
    ((f, field, why),) = _problems(store, latin)
    assert (f, field) == (str(latin), "") and why.startswith("not UTF-8 text: ")
    broken = _file(tmp_path, "broken.jsonl", '{"llm_call_id": 1, "score": 3}\n{oops\n')
    ((f, field, why),) = _problems(store, broken)
    assert (f, field) == (str(broken), "line 2") and why.startswith("invalid JSON: ")
    # every bad row is reported, each with its line (CSV lines count the header)
    bad = _file(tmp_path, "bad.csv", "llm_call_id;score;rewrite\n99;3;\n1;6;\n1;;\n3;abc;\n1;0.5;\n")
    assert _problems(store, bad) == [
        (str(bad), "line 2: llm_call_id", "no such call in the run: '99'"),
        (str(bad), "line 3: score", "must be 1-5, got '6'"),
        (str(bad), "line 4", "needs a score, a rewrite, or both"),
        (str(bad), "line 5: score", "must be a number 1-5, got 'abc'"),
        (str(bad), "line 6: score", "must be 1-5, got '0.5'")]
    rows_ = [[1, 2], {"llm_call_id": 2.5, "score": 3}, {"llm_call_id": 1, "rewrite": {"a": 1}},
             {"llm_call_id": 2, "rewrite": 7}, {"llm_call_id": 1, "rewrite": 5}, {"llm_call_id": 1, "score": None}]
    js = _file(tmp_path, "bad.jsonl", "".join(json.dumps(r) + "\n" for r in rows_))
    assert _problems(store, js) == [
        (str(js), "line 1", "must be a JSON object with llm_call_id, score and/or rewrite, got list"),
        (str(js), "line 2: llm_call_id", "no such call in the run: 2.5"),
        (str(js), "line 3: rewrite", 'must be text (an answer the call could give), got {"a": 1}'),
        (str(js), "line 4: rewrite", "must be text (an answer the call could give), got the number 7"),
        (str(js), "line 5: rewrite", "must be text (an answer the call could give), got the number 5 "
                                     "(options: ['pass', 'reject'])"),
        (str(js), "line 6", "needs a score, a rewrite, or both")]


def test_ratings_file_rows_read(store, tmp_path):
    from simulation.correction.ratings import ratings_from_file

    tsv = _file(tmp_path, "people.csv", "llm_call_id\tscore\trewrite\trater\treason\n1\t2\treject\t\ttoo junior\n"
                                       "3\t\tpass\thuman:zoe\t\n")
    got = ratings_from_file(store, tsv)
    assert got == [Rating(1, "human:people", 2.0, "reject", "too junior"), Rating(3, "human:zoe", None, "pass", "")]
    js = _file(tmp_path, "alias.jsonl", json.dumps({"call_id": 2.0, "score": 5, "rewrite": ""}) + "\n")
    assert ratings_from_file(store, js) == [Rating(2, "human:alias", 5.0, None, "")]


def test_check_rewrites_go_to_calls_that_can_take_them(tmp_path):
    s = RunStore(tmp_path / "run.sqlite")
    schema = json.dumps({"type": "object"})
    s.add_rows((), [row("a", "apply", 0, None), row("b", "apply", 0, None), row("c", "note", 0, None),
                    row("d", "screen", 0, ["pass", "reject"]), row("e", "screen", 0, ["pass", "reject"])])
    s.flush()
    with s.db:
        s.db.execute("UPDATE llm_calls SET json_schema = ? WHERE action = 'apply'", (schema,))
        s.db.executemany("INSERT INTO checks (round, phase, agent_id, act_seq, action, check_name, ok, reason, rewrite, "
                         "calls) VALUES (1, 'p', ?, 0, ?, ?, 0, 'x', ?, '[0]')", [
                             ("a", "apply", "twice", '{"apply":[1]}'), ("b", "apply", "twice", "not json"),
                             ("c", "note", "rude", "Be polite."),
                             ("d", "screen", "req", "reject"), ("e", "screen", "req", "pass")])
    got = {r.llm_call_id: r.rewrite for r in ratings_from_checks(s)}
    assert got == {1: '{"apply":[1]}', 2: None, 3: "Be polite.", 4: "reject", 5: "pass"}, \
        "JSON calls take JSON only; free text takes text; each verdict keeps its own rewrite"
    s.close()


def test_ratings_file_rewrite_off_the_options_and_every_problem(store, tmp_path):
    rows_ = [{"llm_call_id": 1, "rewrite": "maybe"}, {"llm_call_id": 1, "score": 2}, {"llm_call_id": 1, "score": 3},
             {"llm_call_id": 3, "rewrite": "perhaps"}]
    f = _file(tmp_path, "off.jsonl", "".join(json.dumps(r) + "\n" for r in rows_))
    assert _problems(store, f) == [
        (str(f), "line 1: rewrite", "not a valid answer for call 1 (options: ['pass', 'reject'])"),
        (str(f), "line 3: llm_call_id", "call 1 is rated by human:off on line 2 already: one rating per call and rater"),
        (str(f), "line 4: rewrite", "not a valid answer for call 3 (options: ['pass', 'reject'])")]
    empty_csv = _file(tmp_path, "empty.csv", "")
    assert _problems(store, empty_csv) == [(str(empty_csv), "", "no ratings in the file")]


def test_judge_requests_exactly_and_progress(capsys):
    js = mk(8, "apply", schema={"type": "object"}, completion='{"apply":[9]}')
    client = Scripted("4", '{"apply":[1]}')
    r = asyncio.run(judge_call(client, js, "R", "P", rewrite=True))
    assert r == Rating(8, "", 4.0, '{"apply":[1]}', "judged against the rubric")
    score_req, rewrite_req = client.requests
    context = ("Agent profile: P\n\nWhat the agent was asked:\n[system] You are Ann.\n[user] Hire?\n\n"
               "The agent answered: '{\"apply\":[9]}'\n\nRubric: R")
    assert score_req.messages == [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": context + (
        "\n\nScore the answer from 1 (wrong for this person) to 5 (exactly right). Answer with the number.")}]
    assert rewrite_req.messages == [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": context + (
        "\n\nGive the answer this person should have given, and nothing else.")}]
    assert rewrite_req.json_schema == {"type": "object"} and rewrite_req.choices is None and rewrite_req.max_tokens == 48
    assert asyncio.run(judge_call(Scripted("4", "x y"), mk(9), "R", "P", True, max_tokens=7)).rewrite == "x y"
    calls = [mk(1, choices=["pass", "reject"]), mk(2, choices=["pass", "reject"])]
    rubrics = Scripted("3")
    capsys.readouterr()
    out = asyncio.run(ratings_from_judge(calls, rubrics, "judge:j", lambda c: f"rubric {c.id}", lambda a: "P",
                                         rewrite=False, progress=True))
    err = capsys.readouterr().err
    assert "judging" in err and "2/2" in err and "call" in err, err
    assert [r.reason for r in out] == ["judged against the rubric"] * 2
    assert {req.messages[1]["content"].split("Rubric: ")[1].split("\n")[0] for req in rubrics.requests} == \
        {"rubric 1", "rubric 2"}
    asyncio.run(ratings_from_judge(calls, Scripted("3"), "judge:j", lambda c: "r", lambda a: "P", progress=False))
    assert "judging" not in capsys.readouterr().err


def test_a_judge_is_scored_against_the_checks():
    from simulation.correction.ratings import judge_agreement, judge_warning

    passed, failed = set(range(10)), set(range(10, 20))
    constant = judge_agreement({c: 1.0 for c in range(20)}, passed, failed)
    assert constant["verdict"] == "constant" and constant["auc"] == 0.5 and constant["distinct_scores"] == [1.0]
    assert judge_warning(constant) == ("the judge gave every one of 20 calls the score 1: it cannot tell answers "
                                       "apart (uninformative)")
    good = judge_agreement({**{c: 5.0 for c in passed}, **{c: 2.0 for c in failed}}, passed, failed)
    assert (good["verdict"], good["auc"], good["mean_passed"], good["mean_failed"]) == ("informative", 1.0, 5.0, 2.0)
    assert judge_warning(good) is None
    # unrelated: the same spread of scores in both groups
    mixed = judge_agreement({c: float(1 + c % 5) for c in range(20)}, passed, failed)
    assert mixed["verdict"] == "unrelated" and mixed["auc"] == 0.5
    assert judge_warning(mixed).startswith("the judge's scores are unrelated to the checks (AUC 0.50 on 10 passing "
                                           "and 10 failing calls")
    backwards = judge_agreement({**{c: 1.0 for c in passed}, **{c: 4.0 for c in failed}}, passed, failed)
    assert backwards["verdict"] == "unrelated" and backwards["auc"] == 0.0
    # ties count half; a call both passing one check and failing another counts as failing
    tie = judge_agreement({0: 3.0, 1: 4.0, 10: 3.0}, {0, 1, 10}, {10}, min_each=1)
    assert (tie["passed"], tie["failed"], tie["auc"]) == (2, 1, 0.75)
    few = judge_agreement({0: 5.0, 1: 4.0, 10: 1.0}, passed, failed)
    assert few["verdict"] == "too few checked calls"
    assert judge_warning(few).startswith("the judge could not be scored against the checks (2 passing and 1 failing")
    assert judge_agreement({}, passed, failed)["verdict"] == "too few checked calls"
