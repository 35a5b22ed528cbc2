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
