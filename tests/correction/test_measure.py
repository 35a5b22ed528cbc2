"""Groups for the correction loop and the collapse rule that refuses an adapter."""

from __future__ import annotations

from simulation.correction.measure import GroupMeasure, collapsed, split_agents

AGENTS = [f"a{i:03d}" for i in range(300)]


def test_groups_are_seeded_and_disjoint_where_they_must_be():
    g = split_agents(AGENTS, 5, holdout=0.3, control=0.3)
    assert g == split_agents(AGENTS, 5, holdout=0.3, control=0.3)
    assert not g.treated & g.control and g.treated | g.control == set(AGENTS)
    assert 60 < len(g.holdout) < 120 and 60 < len(g.control) < 120
    assert g.holdout_treated and g.holdout_treated <= g.treated
    assert g.holdout & g.control, "the hold-out draw is independent of the A/B draw"
    assert g.agents == frozenset(AGENTS)


def m(decisions, answers, by_check=None) -> GroupMeasure:
    return GroupMeasure(decisions=decisions, answers=answers, by_check=by_check or {})


def test_collapse_rule():
    base = m({"screen": {"pass": 0.6, "reject": 0.4}, "search": {"search": 0.95, "wait": 0.05}},
             {"screen": 40, "search": 40}, {"screen_rule": (10, 40)})
    assert collapsed(base, base) == []
    onto_one = m({"screen": {"pass": 0.0, "reject": 1.0}, "search": {"search": 1.0}}, {"screen": 40, "search": 40},
                 {"screen_rule": (10, 40)})
    got = collapsed(onto_one, base)
    assert len(got) == 1 and "screen" in got[0] and "'reject'" in got[0], "search was already above 90%"
    few = m({"screen": {"reject": 1.0}}, {"screen": 6}, {"screen_rule": (1, 6)})
    assert collapsed(few, base) == [], "six answers tell nothing"
    worse = m(base.decisions, base.answers, {"screen_rule": (20, 40)})
    assert any("fails more" in r for r in collapsed(worse, base))


def test_measure_counts_one_groups_checks_decisions_and_judge(tmp_path):
    import json

    from simulation.correction.measure import measure
    from simulation.store import RunStore

    def call(agent, action, choices, answer, valid=1):
        return (1, "p", agent, action, 0, f"k{agent}{action}{answer}", "[]", answer, json.dumps(choices), None, "e",
                1.0, 1, 1, 0, valid, 0, 1, None, "stop", None)

    def jcall(agent, action, answer, valid=1):  # a structured answer: a JSON schema, no options
        return (1, "p", agent, action, 0, f"j{agent}{action}{answer}", "[]", answer, None, "{}", "e", 1.0, 1, 1, 0,
                valid, 0, 1, None, "stop", None)

    store = RunStore(tmp_path / "run.sqlite")
    store.add_rows((), [call("a", "screen", ["pass", "reject"], "pass"), call("b", "screen", ["reject", "pass"], "pass"),
                        call("c", "screen", ["pass", "reject"], "reject"), call("a", "screen", ["pass", "reject"], "x", 0),
                        call("z", "screen", ["pass", "reject"], "reject"), call("a", "memory.importance", ["1"], "1")]
                   + [jcall("a", "apply", '{"apply": []}'), jcall("b", "apply", '{"apply":[]}'),
                      jcall("c", "apply", '{"apply":[2]}'), jcall("c", "apply", "{", 0), jcall("z", "apply", '{"apply":[]}'),
                      jcall("a", "memory.plan", '{"x":1}')])
    store.flush()
    with store.db:
        store.db.executemany("INSERT INTO checks (round, phase, agent_id, act_seq, action, check_name, ok) "
                             "VALUES (1, 'p', ?, 0, 'screen', ?, ?)",
                             [("a", "rule", 0), ("b", "rule", 1), ("c", "rule", 0), ("c", "other", 1), ("z", "rule", 0)])
        # c's application failed a check whose rewrite applies to posting 1 (linked to c's calls by seq)
        store.db.execute("INSERT INTO checks (round, phase, agent_id, act_seq, action, check_name, ok, rewrite, calls) "
                         "VALUES (1, 'p', 'c', 0, 'apply_decision', 'low', 0, '{\"apply\": [1]}', '[0]')")
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score) VALUES (?, ?, ?)",
                             [(1, "judge:j", 2.0), (2, "judge:j", 5.0), (3, "judge:k", 4.0), (5, "judge:j", 1.0),
                              (1, "check:rule", 1.0), (2, "judge:j", None)])
    store.close()
    g = measure(tmp_path, frozenset({"a", "b", "c"}), "judge:")
    assert g.by_check == {"low": (1, 1), "other": (0, 1), "rule": (2, 3)} and (g.failed, g.checked) == (3, 5)
    assert g.fail == 0.6
    assert g.decisions == {"screen": {"pass": 0.6667, "reject": 0.3333}} and g.answers == {"screen": 3}
    assert g.first_share == {"screen": 0.3333} and g.judge == round((2 + 5 + 4) / 3, 3)
    # JSON answers, written alike however spaced; invalid ones, other agents' and memory's left out
    assert g.structured == {"apply": {'{"apply":[]}': 0.6667, '{"apply":[2]}': 0.3333}}
    assert g.structured_answers == {"apply": 3}
    # the checks' answers: each as given, c's rewritten by the check it failed
    assert g.structured_right == {"apply": {'{"apply":[]}': 0.6667, '{"apply":[1]}': 0.3333}}
    assert measure(tmp_path, frozenset({"a", "b", "c"})).judge is None
    assert measure(tmp_path, frozenset({"a"}), "judge:k").judge is None, "only the group's ratings"
    empty = measure(tmp_path, frozenset({"nobody"}), "judge:")
    assert empty.fail is None and empty.decisions == {} and empty.judge is None and empty.top("screen") == ("", 0.0)


def test_fail_rounding_top_and_holdout_draw():
    from simulation.correction.measure import holdout_unit
    from simulation.llm.routing import ab_unit

    assert GroupMeasure(checked=3, failed=1).fail == 0.3333
    assert m({"s": {"a": 0.5, "b": 0.5}}, {"s": 2}).top("s") == ("b", 0.5)
    assert 0 <= holdout_unit(1, "x") < 1 and holdout_unit(1, "x") == holdout_unit(1, "x") != holdout_unit(2, "x")
    assert holdout_unit(1, "x") != ab_unit(1, "x")
    g = split_agents(AGENTS, 5, holdout=0.3, control=0.3)
    assert g.holdout == {a for a in AGENTS if holdout_unit(5, a) < 0.3}
    assert g.control == {a for a in AGENTS if ab_unit(5, a) >= 0.7}


def test_collapse_rule_edges():
    from simulation.correction.measure import MIN_ANSWERS, SKEW

    base = m({"s": {"a": 0.5, "b": 0.5}}, {"s": MIN_ANSWERS}, {"r": (5, 100)})
    at_skew = m({"s": {"a": SKEW, "b": 1 - SKEW}}, {"s": MIN_ANSWERS})
    assert collapsed(at_skew, base) == [], "exactly at SKEW is no collapse"
    over = m({"s": {"a": 0.95, "b": 0.05}}, {"s": MIN_ANSWERS})
    assert collapsed(over, base) == ["decision 's' collapsed onto 'a' (95%; base 50%)"]
    assert collapsed(m(over.decisions, {"s": MIN_ANSWERS - 1}), base) == []
    assert collapsed(over, m(base.decisions, {"s": MIN_ANSWERS - 1})) == [], "the base needs enough answers too"
    assert collapsed(over, m({"s": {"a": SKEW, "b": 0.1}}, {"s": MIN_ANSWERS})) != [], "a base at SKEW is not skewed"
    # a decision no check grades: the base's position-free preference for 70% justifies the option
    assert collapsed(over, base, {"s": {"a": 0.7}}, unchecked={"s"}) == []
    assert collapsed(over, base, {"s": {"a": 0.69}}, unchecked={"s"}) != []
    assert collapsed(over, base, {"s": {"a": 0.7}}) != [], "a checked decision's right answers are the checks'"
    # the exam shows the adapter giving each right option where it is right, and the live calls' right answers
    # call for 'a' for 70%: the market changed under the decision, it did not collapse (run S2's offers)
    assert collapsed(over, base, discerning={"s": {"a": 0.7, "b": 0.3}}) == []
    assert collapsed(over, base, discerning={"s": {"a": 0.69, "b": 0.31}}) == [
        "decision 's' collapsed onto 'a' (95%; base 50%)"]
    assert collapsed(over, base, discerning={"s": {"b": 1.0}}) != [], "the live right answers call for the other"
    assert collapsed(over, base, discerning={"t": {"a": 1.0}}) != [], "another decision's answers say nothing"
    assert collapsed(m({}, {}, {"r": (10, 100)}), base) == [], "five points more is still within the margin"
    assert collapsed(m({}, {}, {"r": (11, 100)}), base) == ["check 'r' fails more (11/100 vs base 5/100)"]
    assert collapsed(m({}, {}, {"r": (50, 100)}), m({}, {}, {})) == [], "no base figure to compare with"
    assert collapsed(m({}, {}, {"r": (0, 0)}), base) == []


def test_a_collapse_onto_the_base_models_own_preference_is_following_it():
    from simulation.correction.measure import MIN_ANSWERS, SKEW

    base = m({"s": {"a": 0.5, "b": 0.5}}, {"s": MIN_ANSWERS})  # live answers: position, not preference
    over = m({"s": {"a": 0.95, "b": 0.05}}, {"s": MIN_ANSWERS})
    assert collapsed(over, base, {"s": {"a": 0.92, "b": 0.08}}) == [], "the base prefers 'a' for 92% of calls"
    assert collapsed(over, base, {"s": {"a": SKEW, "b": 1 - SKEW}}) == [
        "decision 's' collapsed onto 'a' (95%; base 50%, 90% with position averaged out)"]
    assert collapsed(over, base, {"s": {"b": 0.95, "a": 0.05}}) != [], "a flip away from the base's preference"
    assert collapsed(over, base, {"t": {"a": 1.0}}) == ["decision 's' collapsed onto 'a' (95%; base 50%)"]


def test_a_structured_decision_collapsing_onto_one_answer_is_refused():
    """Run K: the adapter answered every application {"apply":[]} (treated seekers stopped applying), which
    no choice rule sees."""
    from simulation.correction.measure import MIN_ANSWERS

    def j(shares, n):
        return GroupMeasure(structured=shares, structured_answers={a: n for a in shares})

    base = j({"apply": {"[1,2]": 0.6, "[1]": 0.4}}, 40)
    assert collapsed(base, base) == []
    none = j({"apply": {"[]": 1.0}}, 40)
    assert collapsed(none, base) == [
        "decision 'apply' collapsed onto the answer [] (100% of 40; base 0%, the checks' answer 0%)"]
    assert collapsed(j({"apply": {"[]": 0.9, "[1]": 0.1}}, 40), base) == [], "exactly at SKEW is no collapse"
    assert collapsed(j({"apply": {"[]": 1.0}}, MIN_ANSWERS - 1), base) == [], "too few answers"
    assert collapsed(none, j(base.structured, MIN_ANSWERS - 1)) == [], "the base needs enough answers too"
    assert collapsed(none, j({"apply": {"[]": 0.95, "[1]": 0.05}}, 40)) == [], "the base already gave it"
    flipped = collapsed(none, j({"apply": {"[1,2]": 0.95, "[]": 0.05}}, 40))
    assert flipped == ["decision 'apply' collapsed onto the answer [] (100% of 40; base 5%, the checks' answer 0%)"], \
        "a flip is seen"


def test_a_structured_collapse_the_checks_answers_call_for_is_kept():
    """Run L: the adapter answered every application {"apply":[1]}; in its base the checks' answers (each
    seeker's own, rewritten where a check failed) said [1] for 29% of calls: refused. Where they say it
    for 70% or more, the adapter follows the checks."""
    from simulation.correction.measure import JUSTIFIED

    def j(shares, right, n=40):
        return GroupMeasure(structured=shares, structured_answers={a: n for a in shares}, structured_right=right)

    one = j({"apply": {"[1]": 1.0}}, {})
    base = j({"apply": {"[1,2]": 0.6, "[1]": 0.4}}, {"apply": {"[1,2]": 0.36, "[1]": 0.29, "[]": 0.26}})
    assert collapsed(one, base) == [
        "decision 'apply' collapsed onto the answer [1] (100% of 40; base 40%, the checks' answer 29%)"]
    assert collapsed(one, j(base.structured, {"apply": {"[1]": JUSTIFIED, "[]": 0.3}})) == [], "justified"
    assert collapsed(one, j(base.structured, {"apply": {"[1]": 0.69, "[]": 0.31}})) != [], "below JUSTIFIED"
