"""``run_checks`` in isolation: what each check sees, what each verdict becomes, and a bad verdict."""

from __future__ import annotations

import pytest

from simulation.core.checks import PASS, Check, CheckContext, Failed, check, run_checks
from simulation.core.records import Action

SEEN: list[CheckContext] = []


@check("apply")
def applied_twice(c: CheckContext):
    SEEN.append(c)
    picks = c.action.data.get("apply")
    if picks is None:
        return None
    return Failed("applied twice", '{"apply":[1]}') if len(picks) != len(set(picks)) else PASS


@check("apply", name="named_rule")
def always_passes(c: CheckContext):
    return PASS


def test_check_decorator_names_and_binds_the_action():
    # decorated here, at test time (a decorator run at import is out of a mutation tool's sight)
    def rule(c):
        return PASS

    plain, named = check("apply")(rule), check("vote", name="my_rule")(rule)
    assert isinstance(plain, Check) and (plain.name, plain.action, plain.fn) == ("rule", "apply", rule)
    assert (named.name, named.action, named.fn) == ("my_rule", "vote", rule)
    assert plain(None) is PASS
    assert (always_passes.name, always_passes.action) == ("named_rule", "apply")


def test_run_checks_verdicts_contexts_and_step_actions():
    SEEN.clear()
    acts = [Action("a", "apply", True, {"apply": [1, 1]}, 0), Action("a", "search", True, {}, 1),
            Action("b", "apply", True, {"apply": [2]}, 0), Action("c", "apply", True, {}, 0),
            Action("a", "apply", True, {"apply": [3]}, 2)]
    env, profiles = object(), {"a": {"name": "Ann"}, "b": {"name": "Bo"}, "c": {}}
    hist = {("a", "apply"): [Action("a", "apply", True, {"apply": [9]}, 0)]}
    out = run_checks([applied_twice, always_passes], acts, 3, "search", env, profiles.__getitem__,
                     lambda agent, name: hist.get((agent, name), []))
    got = [(r.check, r.action.agent_id, r.action.seq, r.ok, r.reason, r.rewrite) for r in out]
    assert got == [("applied_twice", "a", 0, False, "applied twice", '{"apply":[1]}'), ("named_rule", "a", 0, True, "", None),
                   ("applied_twice", "b", 0, True, "", None), ("named_rule", "b", 0, True, "", None),
                   ("named_rule", "c", 0, True, "", None),  # applied_twice does not apply to c: no result
                   ("applied_twice", "a", 2, True, "", None), ("named_rule", "a", 2, True, "", None)]
    first = SEEN[0]
    assert first.round == 3 and first.phase == "search" and first.env is env
    assert first.profile == {"name": "Ann"} and first.profile_of("b") == {"name": "Bo"}
    assert first.history("apply") == hist[("a", "apply")] and first.history("search") == []
    assert [x.seq for x in first.step_actions] == [0, 1, 2], "the actor's actions of the same step, all of them"
    assert [x.agent_id for x in SEEN[1].step_actions] == ["b"]


def test_no_checks_or_no_covered_actions_give_nothing():
    assert run_checks([], [Action("a", "apply", True, {"apply": [1]})], 1, "p", None, dict, lambda *_: []) == []
    assert run_checks([applied_twice], [Action("a", "vote", True, {})], 1, "p", None, dict, lambda *_: []) == []


def test_a_check_returning_something_else_is_a_scenario_bug():
    bad = Check("sloppy", "apply", lambda c: "yes")
    with pytest.raises(TypeError, match=r"check sloppy returned 'yes': return PASS, Failed\(...\) or None"):
        run_checks([bad], [Action("a", "apply", True, {})], 1, "p", None, dict, lambda *_: [])
    false = Check("falsy", "apply", lambda c: False)
    with pytest.raises(TypeError, match="returned False"):
        run_checks([false], [Action("a", "apply", True, {})], 1, "p", None, dict, lambda *_: [])


def test_a_check_says_where_its_action_holds_the_answer():
    from simulation.core.checks import PASS, check

    @check("screen", answer="result")
    def by_field(c):
        return PASS

    @check("apply", answer=lambda text, data: {**data, "apply": [int(x) for x in text.split(",")]})
    def by_function(c):
        return PASS

    @check("screen")
    def live_only(c):
        return PASS

    data = {"seeker": "s1", "result": "pass"}
    assert by_field.answer == "result" and live_only.answer is None
    assert by_field.with_answer(data, "reject") == {"seeker": "s1", "result": "reject"}
    assert data == {"seeker": "s1", "result": "pass"}, "the recorded data is not changed"
    assert by_function.with_answer({"shown": ["j1"], "apply": [9]}, "1,2") == {"shown": ["j1"], "apply": [1, 2]}
    import pytest

    with pytest.raises(ValueError, match=r"check live_only does not say where its action holds the call's answer"):
        live_only.with_answer(data, "reject")
