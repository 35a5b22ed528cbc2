"""``dataset_rows`` on a hand-made run store: which rating becomes which row of each kind, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulation.config import ConfigError
from simulation.correction.datasets import _balanced, dataset_rows, write_dataset
from simulation.correction.ratings import GOOD
from simulation.store import RunStore

SCREEN = ["pass", "reject"]


def prompt(agent: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"You are {agent}."}, {"role": "user", "content": "Hire?"}]


def call(agent: str, action: str, completion: str, choices: list[str] | None = SCREEN, valid: bool = True,
         round_: int = 1) -> tuple:
    return (round_, "p", agent, action, 1, f"k-{agent}-{action}", json.dumps(prompt(agent)), completion,
            json.dumps(choices) if choices else None, None, "e", 1.0, 1, 1, 0, int(valid), 0, 1,
            None if valid else "StructuredOutputError: off", "stop", None)


@pytest.fixture()
def run(tmp_path) -> Path:
    store = RunStore(tmp_path / "run.sqlite")
    store.add_rows((), [
        call("a", "screen", "pass"),            # 1: rated low, rewritten
        call("b", "screen", "reject"),          # 2: one rater 5, another 2 (low)
        call("c", "screen", "pass"),            # 3: held out
        call("d", "apply", '{"apply":[1]}', None),  # 4: scored 4
        call("e", "screen", "maybe", valid=False),  # 5: invalid, rewritten
        call("f", "vote", "yes", ["yes", "no"], round_=2),  # 6: unrated, another action: an anchor
        call("g", "memory.importance", "3", ["1", "3"]),    # 7: framework bookkeeping: never an anchor
        call("h", "screen", "pass"),            # 8: unrated, but its action is rated: not an anchor
        call("c", "vote", "no", ["yes", "no"]),  # 9: unrated, of a held-out agent
        call("i", "vote", "no", ["yes", "no"], valid=False),  # 10: invalid: not an anchor
    ])
    store.flush()
    with store.db:
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (?,?,?,?)", [
            (1, "check:x", 1.0, "reject"), (2, "check:x", 5.0, None), (3, "check:x", 1.0, "reject"),
            (4, "human:ann", 4.0, None), (5, "check:x", None, "pass"), (2, "human:bob", 2.0, None)])
    store.close()
    return tmp_path


def ids(rows: list[dict]) -> list[int]:
    return [r["meta"]["call_id"] for r in rows]


def test_sft_takes_rewrites_and_good_answers_only(run):
    rows = dataset_rows(run, "sft", exclude_agents={"c"})
    assert ids(rows) == [1, 4, 5]
    assert [r["messages"][-1] for r in rows] == [{"role": "assistant", "content": "reject"},
                                                  {"role": "assistant", "content": '{"apply":[1]}'},
                                                  {"role": "assistant", "content": "pass"}]
    assert rows[0]["messages"][:-1] == prompt("a")
    assert rows[0]["meta"] == {"run": str(run), "call_id": 1, "rater": "check:x", "action": "screen", "round": 1,
                               "options": SCREEN}
    assert "options" not in rows[1]["meta"], "a JSON answer has no options: the token loss trains it"
    # without the hold-out, call 3's correction is in; a higher bar drops the 4-scored answer
    assert ids(dataset_rows(run, "sft")) == [1, 3, 4, 5]
    assert ids(dataset_rows(run, "sft", min_score=4.5, exclude_agents={"c"})) == [1, 5]
    # one rater's view: bob's low score is not seen, so check:x's 5 keeps call 2's answer
    assert ids(dataset_rows(run, "sft", rater="check:", exclude_agents={"c"})) == [1, 2, 5]


def test_sft_anchors_and_balance(run):
    rows = dataset_rows(run, "sft", exclude_agents={"c"}, anchor=True)
    assert ids(rows) == [1, 4, 5, 6]
    assert rows[-1]["meta"] == {"run": str(run), "call_id": 6, "rater": "anchor", "action": "vote", "round": 2,
                                "options": ["yes", "no"]}
    assert rows[-1]["messages"][-1]["content"] == "yes"
    assert ids(dataset_rows(run, "sft", anchor=True)) == [1, 3, 4, 5, 6, 9]
    balanced = dataset_rows(run, "sft", balance=True)  # screen: reject twice, pass once -> pass twice
    assert sorted((r["meta"]["call_id"], r["meta"].get("repeat", 0)) for r in balanced) == \
        [(1, 0), (3, 0), (4, 0), (5, 0), (5, 1)]


def test_balance_repeats_rare_answers_up_to_a_cap():
    def row(action: str, answer: str, i: int) -> dict:
        return {"messages": [{"role": "assistant", "content": answer}], "meta": {"action": action, "call_id": i}}

    rows = [row("s", "x", i) for i in range(10)] + [row("s", "y", 10)] + [row("s", "z", 11), row("s", "z", 12)] \
        + [row("t", "x", 20), row("t", "y", 21)]
    out = _balanced(rows)
    counts: dict[tuple[str, str], int] = {}
    for r in out:
        key = (r["meta"]["action"], r["messages"][-1]["content"])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {("s", "x"): 10, ("s", "y"): 4, ("s", "z"): 8, ("t", "x"): 1, ("t", "y"): 1}
    assert [r["meta"].get("repeat") for r in out if r["meta"]["call_id"] == 10] == [None, 1, 2, 3]
    assert rows[10]["meta"] == {"action": "s", "call_id": 10}, "the input rows are not changed"
    # "y" was rated wrong on another call: its kept row appears once; a rewrite saying "y" is still repeated
    kept = _balanced(rows, {"s": {"y"}})
    assert [r["meta"].get("repeat") for r in kept if r["meta"]["call_id"] == 10] == [None]
    assert len(kept) == len(out) - 3
    fixed = _balanced(rows, {"s": {"y"}}, rewritten={10})
    assert [r["meta"].get("repeat") for r in fixed if r["meta"]["call_id"] == 10] == [None, 1, 2, 3]
    assert len(_balanced(rows, {"t": {"y"}, "s": {"x"}})) == len(out), "only the action it was rated wrong in"
    # anchored rows (calls no check grades) are neither counted nor repeated: t's "y" stays once (counted,
    # three anchored "x" would make it rare and repeat it 4 times)
    anchored = [{**row("t", "x", 40 + i), "meta": {"action": "t", "call_id": 40 + i, "anchored": True}}
                for i in range(3)]
    mixed = _balanced(rows + anchored)
    assert sum(1 for r in mixed if r["meta"]["call_id"] == 21) == 1
    assert sum(1 for r in mixed if r["meta"].get("anchored")) == 3 and len(mixed) == len(out) + 3
    # but anchors fewer than their group's commonest rated answer are repeated toward it, as one more
    # answer (s: 10 "x" against 3 anchors -> 3 times each; counted per options shown, capped at 4)
    few = [{**row("s", "x", 50 + i), "meta": {"action": "s", "call_id": 50 + i, "anchored": True}} for i in range(3)]
    both = _balanced(rows + few)
    assert [r["meta"].get("repeat") for r in both if r["meta"]["call_id"] == 50] == [None, 1, 2]
    assert sum(1 for r in both if r["meta"].get("anchored")) == 9 and len(both) == len(out) + 9
    one = _balanced(rows + few[:1])
    assert sum(1 for r in one if r["meta"].get("anchored")) == 4, "capped at 4"
    elsewhere = [{**r, "meta": {**r["meta"], "options": ["x", "y"]}} for r in few]
    assert sum(1 for r in _balanced(rows + elsewhere) if r["meta"].get("anchored")) == 3, "other options shown"


def test_balance_counts_an_answer_among_the_calls_that_offered_it():
    def row(answer: str, i: int, options: list[str]) -> dict:
        return {"messages": [{"role": "assistant", "content": answer}],
                "meta": {"action": "respond", "call_id": i, "options": options}}

    one, two = ["1", "decline all"], ["1", "2", "decline all"]
    # options are shuffled per call: the same options in another order are the same set
    rows = ([row("1", i, one if i % 2 else one[::-1]) for i in range(8)]
            + [row("decline all", 10 + i, one) for i in range(4)]
            + [row("2", 20 + i, two) for i in range(3)] + [row("decline all", 30, two)])
    counts: dict[tuple[int, str], int] = {}
    for r in _balanced(rows):
        key = (len(r["meta"]["options"]), r["messages"][-1]["content"])
        counts[key] = counts.get(key, 0) + 1
    # "2" is the commonest answer where it was offered: not repeated against the single offers' "1"
    assert counts == {(2, "1"): 8, (2, "decline all"): 8, (3, "2"): 3, (3, "decline all"): 3}


def test_balance_never_repeats_a_kept_answer_rated_wrong_elsewhere(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    store.add_rows((), [call("a", "apply", '{"apply":[1,1]}', None), call("b", "apply", '{"apply":[1,1]}', None),
                        *[call(x, "apply", '{"apply":[2]}', None) for x in "cdefgh"]])
    store.flush()
    with store.db:  # a's [1,1] is wrong (corrected); b's identical answer was passed by another rule
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (?,?,?,?)",
                             [(1, "check:dup", 1.0, '{"apply":[1]}'), (2, "check:pay", 5.0, None),
                              *[(i, "check:pay", 5.0, None) for i in range(3, 9)]])
    store.close()
    rows = dataset_rows(tmp_path, "sft", balance=True)
    answers = [(r["meta"]["call_id"], r["messages"][-1]["content"]) for r in rows]
    assert answers.count((2, '{"apply":[1,1]}')) == 1, "the wrong answer is not repeated"
    assert answers.count((1, '{"apply":[1]}')) == 4, "the correction is"


def test_preference_pairs_and_reward_rows(run):
    pref = dataset_rows(run, "preference", exclude_agents={"c"})
    assert ids(pref) == [1, 5]
    assert pref[0]["prompt"] == prompt("a") and pref[0]["chosen"] == [{"role": "assistant", "content": "reject"}]
    assert pref[0]["rejected"] == [{"role": "assistant", "content": "pass"}]
    assert pref[1]["rejected"] == [{"role": "assistant", "content": "maybe"}]
    assert ids(dataset_rows(run, "preference", min_score=1.0, exclude_agents={"c"})) == [5], \
        "a rewrite of an answer scored at the bar is no preference"
    reward = dataset_rows(run, "reward", exclude_agents={"c"})
    got = [(r["meta"]["call_id"], r["completion"][0]["content"], r["reward"], r["meta"].get("rewrite", False))
           for r in reward]
    assert got == [(1, "pass", 1.0, False), (1, "reject", GOOD, True), (2, "reject", 5.0, False),
                   (4, '{"apply":[1]}', 4.0, False), (5, "pass", GOOD, True), (2, "reject", 2.0, False)]
    assert all(r["prompt"] == prompt(r["meta"]["call_id"] and "abcdefgh"[r["meta"]["call_id"] - 1]) for r in reward)


def test_contradicting_rewrites_and_errors(run, tmp_path):
    from simulation.store import RunStore

    store = RunStore(run / "run.sqlite")
    with store.db:
        store.db.execute("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (1, 'human:zoe', 1, 'pass')")
    store.close()
    for kind in ("sft", "preference"):
        with pytest.raises(ConfigError, match=r"calls \[1\] have contradicting rewrites"):
            dataset_rows(run, kind)
    assert dataset_rows(run, "reward"), "reward rows may disagree"
    assert ids(dataset_rows(run, "sft", rater="check:", exclude_agents={"c"})) == [1, 2, 5]
    with pytest.raises(ConfigError, match="one of sft, preference, reward, got 'dpo'"):
        dataset_rows(run, "dpo")
    for bad in (0.5, 5.5):
        with pytest.raises(ConfigError, match="--min-score"):
            dataset_rows(run, "sft", min_score=bad)
    with pytest.raises(ConfigError, match=r"ratings: none by judge:\*: rate the run first"):
        dataset_rows(run, "sft", rater="judge:")
    with pytest.raises(ConfigError, match=r"no preference rows: the ratings hold no rewrites of low-scored answers "
                                          r"\(min score 4.0\)"):
        dataset_rows(run, "preference", rater="human:ann")
    with pytest.raises(ConfigError, match=r"no sft rows: the ratings hold no usable answers \(min score 5.0\)"):
        dataset_rows(run, "sft", rater="human:ann", min_score=5.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    RunStore(empty / "run.sqlite").close()
    with pytest.raises(ConfigError, match="ratings: none: rate the run first"):
        dataset_rows(empty, "sft")


def test_write_dataset_is_jsonl_written_whole(run, tmp_path):
    out = tmp_path / "sub" / "d.jsonl"
    n = write_dataset(run, "sft", out, exclude_agents={"c"}, anchor=True)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert n == len(lines) == 4 and [json.loads(x)["meta"]["call_id"] for x in lines] == [1, 4, 5, 6]
    assert not list(out.parent.glob("*.tmp"))


def problem_of(fn, *args, **kw) -> tuple[str, str, str]:
    with pytest.raises(ConfigError) as e:
        fn(*args, **kw)
    (p,) = e.value.problems
    return p.file, p.field, p.reason


def test_each_refusal_names_file_and_field(run):
    assert problem_of(dataset_rows, run, "dpo") == ("<command line>", "--kind", "one of sft, preference, reward, got 'dpo'")
    assert problem_of(dataset_rows, run, "sft", min_score=0.5) == ("<command line>", "--min-score",
                                                                   "must be between 1 and 5")
    assert problem_of(dataset_rows, run, "sft", rater="judge:") == (
        str(run), "ratings", "none by judge:*: rate the run first (gensim rate RUN --by checks|judge|file)")
    assert problem_of(dataset_rows, run, "sft", rater="human:ann", min_score=5.0) == (
        str(run), "ratings", "no sft rows: the ratings hold no usable answers (min score 5.0)")
    store = RunStore(run / "run.sqlite")
    with store.db:
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (?, 'human:zoe', 1, ?)",
                             [(i, f"x{i}") for i in (1, 2, 3, 4, 5, 8)])
    store.close()
    file, field, reason = problem_of(dataset_rows, run, "sft")
    assert (file, field) == (str(run), "ratings")
    assert reason == "calls [1, 3, 5] have contradicting rewrites from different raters: choose one with --rater"


def test_a_call_rated_twice_is_one_sft_row_and_anchors_are_sft_only(run):
    store = RunStore(run / "run.sqlite")
    with store.db:
        store.db.execute("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (4, 'human:bob', 5.0, NULL)")
    store.close()
    assert ids(dataset_rows(run, "sft", exclude_agents={"c"})) == [1, 4, 5]
    assert all("messages" not in r for r in dataset_rows(run, "reward", anchor=True))
    assert all("messages" not in r for r in dataset_rows(run, "preference", anchor=True))


def test_write_dataset_passes_every_option_and_keeps_text(run, tmp_path):
    out = tmp_path / "a" / "b" / "d.jsonl"

    def written() -> list[int]:
        return [json.loads(x)["meta"]["call_id"] for x in out.read_text(encoding="utf-8").splitlines()]

    assert write_dataset(run, "sft", out) == 4 and written() == [1, 3, 4, 5], "no anchors unless asked"
    assert write_dataset(run, "sft", out, rater="check:", exclude_agents={"c"}) == 3 and written() == [1, 2, 5]
    assert write_dataset(run, "sft", out, balance=True) == 5 and sorted(written()) == [1, 3, 4, 5, 5]
    assert write_dataset(run, "sft", out, min_score=4.5, exclude_agents={"c"}) == 2 and written() == [1, 5]
    store = RunStore(run / "run.sqlite")
    with store.db:
        store.db.execute("UPDATE ratings SET rewrite = 'réjéct ✓' WHERE llm_call_id = 1")
    store.close()
    write_dataset(run, "sft", out, exclude_agents={"c"})
    assert "réjéct ✓" in out.read_text(encoding="utf-8"), "written as UTF-8 text, not escaped"


def test_permuted_copies_move_the_position_and_keep_the_answer(tmp_path):
    from simulation.llm.agent_llm import options_line

    def shuffled(agent: str, choices: list[str], answer: str) -> tuple:
        row = list(call(agent, "pick", answer, choices))
        msgs = prompt(agent)
        msgs[-1]["content"] += options_line(choices)
        row[6] = json.dumps(msgs)
        return tuple(row)

    store = RunStore(tmp_path / "run.sqlite")
    store.add_rows((), [shuffled("a", ["pass", "reject"], "reject"), shuffled("b", ["x", "y", "z"], "y"),
                        shuffled("c", list("abcde"), "c"), call("d", "pick", "pass")])
    store.flush()
    with store.db:
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score, rewrite) VALUES (?,?,?,?)",
                             [(1, "check:x", 5.0, None), (2, "check:x", 1.0, "z"), (3, "check:x", 5.0, None),
                              (4, "check:x", 5.0, None)])
    store.close()
    rows = dataset_rows(tmp_path, "sft", permute=3, seed=4)
    by: dict[int, list[dict]] = {}
    for r in rows:
        by.setdefault(r["meta"]["call_id"], []).append(r)
    orders = {cid: [r["messages"][-2]["content"].rsplit("Options, in this order: ", 1)[-1] for r in rs]
              for cid, rs in by.items() if cid != 4}
    assert orders[1] == ["pass, reject.", "reject, pass."], "binary: the other order"
    assert sorted(orders[2]) == sorted(", ".join(p) + "." for p in
                                       [("x", "y", "z"), ("x", "z", "y"), ("y", "x", "z"), ("y", "z", "x")]), \
        "three options: the first three of the other five orders (copies capped at permute)"
    assert len(orders[3]) == 4 and len(set(orders[3])) == 4
    for rs in by.values():  # the answer's content never changes; the copies are marked
        assert {r["messages"][-1]["content"] for r in rs} == {rs[0]["messages"][-1]["content"]}
        assert [r["meta"].get("permuted") for r in rs] == [None, *range(1, len(rs))]
        assert all(r["messages"][:-2] == rs[0]["messages"][:-2] for r in rs)
    assert by[2][0]["messages"][-1]["content"] == "z", "the rewrite, moved around"
    assert len(by[4]) == 1, "a prompt that states no order is not copied"
    assert dataset_rows(tmp_path, "sft", permute=3, seed=4) == rows, "seeded"
    five = [r["messages"][-2]["content"] for r in dataset_rows(tmp_path, "sft", permute=3, seed=5) if r["meta"]["call_id"] == 3]
    assert five != [r["messages"][-2]["content"] for r in by[3]]
    assert len(dataset_rows(tmp_path, "sft")) == 4, "off by default"


def test_anchor_answers_replace_the_recorded_ones(run):
    rows = dataset_rows(run, "sft", exclude_agents={"c"}, anchor=True, anchor_answers={6: "no", 7: "1"})
    anchors = [(r["meta"]["call_id"], r["meta"]["action"], r["messages"][-1]["content"]) for r in rows
               if r["meta"]["rater"] == "anchor"]
    assert anchors == [(6, "vote", "no"), (7, "memory.importance", "1")], "memory decisions anchored too"
    # a call with no order-averaged preference (a tie) is not anchored at all
    rows = dataset_rows(run, "sft", exclude_agents={"c"}, anchor=True, anchor_answers={7: "3"})
    assert [(r["meta"]["call_id"], r["messages"][-1]["content"]) for r in rows if r["meta"]["rater"] == "anchor"] == \
        [(7, "3")]
    from simulation.correction.datasets import anchor_candidates

    assert [c.id for c in anchor_candidates(run, {"c"})] == [6, 7]
    assert [c.id for c in anchor_candidates(run, {"c"}, skip={"vote"})] == [7], "--no-train: not asked"


def test_anchors_and_unsure_calls_carry_the_base_s_probabilities_as_targets(run):
    """The choice loss trains an anchor toward the base's order-averaged probabilities: they ride in
    ``meta.target``; a kept or corrected answer has none (its answer is the target); the rows load
    back as examples with those options and targets."""
    targets = {6: {"yes": 0.3, "no": 0.7}, 2: {"pass": 0.6, "reject": 0.4}, 1: {"pass": 0.9, "reject": 0.1}}
    rows = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, unsure={2}, anchor=True,
                        anchor_answers={2: "pass", 6: "no", 7: "3"}, anchor_targets=targets, permute=1)
    got = {(r["meta"]["call_id"], r["meta"].get("permuted", 0)): r["meta"].get("target") for r in rows}
    assert got[(6, 0)] == {"yes": 0.3, "no": 0.7} and got[(2, 0)] == {"pass": 0.6, "reject": 0.4}
    assert got[(1, 0)] is None, "a corrected call trains on its correction"
    assert got[(7, 0)] is None, "no probabilities for it: the drawn answer is the target"
    out = run / "d.jsonl"
    write_dataset(run, "sft", out, rater="check:", exclude_agents={"c"}, unsure={2}, anchor=True,
                  anchor_answers={2: "pass", 6: "no", 7: "3"}, anchor_targets=targets)
    from simulation.training.data import load_examples

    ex = {e.action + ":" + e.completion: e for e in load_examples(out, "sft")}
    assert ex["vote:no"].options == ("yes", "no") and ex["vote:no"].target == {"yes": 0.3, "no": 0.7}
    assert ex["screen:reject"].target is None and ex["screen:reject"].options == ("pass", "reject")


def test_unsure_calls_take_the_order_averaged_answer_or_go(run):
    # call 2 (kept "reject", scored 5 by check:x) is unsure: its checks name no right option
    rows = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, unsure={2}, anchor_answers={2: "pass"})
    got = {r["meta"]["call_id"]: (r["messages"][-1]["content"], r["meta"].get("anchored")) for r in rows}
    assert got == {1: ("reject", None), 2: ("pass", True), 5: ("pass", None)}
    # no order-averaged answer for it (a tie): the row goes, never the kept answer
    assert ids(dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, unsure={2}, anchor_answers={})) == [1, 5]
    # a rewritten call keeps its rewrite: the check named the right option
    rows = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, unsure={1}, anchor_answers={1: "pass"})
    assert [(r["meta"]["call_id"], r["messages"][-1]["content"]) for r in rows] == [(1, "reject"), (2, "reject"), (5, "pass")]


def test_keep_marks_the_rated_rows_of_its_decisions_and_their_copies(run):
    # call 2 is unsure (no right option named): its anchored row is not kept; the rated screenings
    # are; the anchors of other decisions never are
    rows = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, unsure={2}, anchor=True,
                        anchor_answers={2: "pass", 6: "no", 7: "3"}, keep={"screen"})
    assert {r["meta"]["call_id"]: bool(r["meta"].get("keep")) for r in rows} == {1: True, 2: False, 5: True,
                                                                                 6: False, 7: False}
    assert not any(r["meta"].get("keep") for r in dataset_rows(run, "sft", rater="check:", exclude_agents={"c"},
                                                               unsure={2}, anchor_answers={2: "pass"}))


def test_skip_leaves_out_every_row_of_its_decisions(run):
    """``--no-train``: a skipped decision gives no row, rated, repeated, reordered or anchored; the
    others are as without it."""
    every = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, anchor=True, balance=True, permute=1,
                         anchor_answers={6: "no", 7: "3"})
    assert {r["meta"]["action"] for r in every} == {"screen", "vote", "memory.importance"}
    no_screen = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, anchor=True, balance=True, permute=1,
                             anchor_answers={6: "no", 7: "3"}, skip={"screen"})
    assert no_screen == [r for r in every if r["meta"]["action"] != "screen"]
    no_vote = dataset_rows(run, "sft", rater="check:", exclude_agents={"c"}, anchor=True,
                           anchor_answers={6: "no", 7: "3"}, skip={"vote"})
    assert {r["meta"]["action"] for r in no_vote} == {"screen", "memory.importance"}, "an anchored decision skipped"
    assert not any(r["meta"]["action"] == "apply" for r in dataset_rows(run, "reward", skip={"apply"}))
    assert any(r["meta"]["action"] == "apply" for r in dataset_rows(run, "reward"))
