"""Decision health per round: option shares, entropy, first-option share, skew warnings; shuffled options."""

from __future__ import annotations

import json
import math

from simulation.cli import main
from simulation.core.health import decision_health
from simulation.store import RunStore
from tests.runs import rows


def call_row(agent: str, choices: list[str], answer: str, action: str = "screen", valid: bool = True) -> tuple:
    return (1, "p", agent, action, 1, f"k-{agent}-{answer}-{action}", "[]", answer, json.dumps(choices), None, "e",
            1.0, 1, 1, 0, int(valid), 0, 1, None if valid else "StructuredOutputError: off the menu", "stop", None)


def test_health_metrics_and_skew(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    store.add_rows((), [call_row(f"a{i}", ["pass", "reject"], "pass") for i in range(24)]
                   + [call_row(f"b{i}", ["yes", "no"] if i % 2 else ["no", "yes"], "yes", "vote") for i in range(10)]
                   + [call_row("m", ["1", "2"], "1", "memory.importance")]
                   + [call_row(f"c{i}", ["pass", "reject"], "maybe", valid=False) for i in range(6)])
    h = decision_health(store, 1)
    m = h.metrics
    # the 6 invalid answers count as calls, never as an option or toward an agent's answers
    assert m["decision.screen.share.pass"] == 1.0 and m["decision.screen.first_share"] == 1.0
    assert m["decision.screen.entropy"] == 0.0 and m["decision.screen.n"] == 30
    assert m["decision.screen.invalid_share"] == 0.2 and "decision.screen.share.maybe" not in m
    assert m["decision.vote.share.yes"] == 1.0 and m["decision.vote.first_share"] == 0.5  # option, not position
    assert not any(k.startswith("decision.memory") for k in m)
    assert len(h.skewed) == 1 and "'screen': 'pass' took 24 of 24" in h.skewed[0]  # the vote had 10 agents only
    store.close()


def test_shuffled_options_are_recorded_stated_and_replayed(stub_scenario, tmp_path, capsys):
    run, replay = tmp_path / "run", tmp_path / "replay"
    assert main(["run", str(stub_scenario), "--agents", "100", "--rounds", "1", "--out", str(run), "--no-progress",
                 "llm.shuffle_options=true", "scenario.search_k=1", "--json"]) == 0
    out, err = capsys.readouterr()
    orders = {c for (c,) in rows(run, "SELECT choices FROM llm_calls WHERE action = 'search_decision'")}
    assert orders == {'["search", "wait"]', '["wait", "search"]'}
    prompts = rows(run, "SELECT prompt, choices FROM llm_calls WHERE action = 'search_decision'")
    assert all(f"Options, in this order: {', '.join(json.loads(c))}." in json.loads(p)[-1]["content"] for p, c in prompts)
    metrics = dict(rows(run, "SELECT name, value FROM metrics WHERE round = 1"))
    assert {"decision.search_decision.first_share", "decision.search_decision.entropy",
            "decision.screen.n"} <= set(metrics)
    # search_k=1 leaves one option: every seeker "chooses" it, which the run reports
    assert metrics["decision.job_count.share.1"] == 1.0
    summary = json.loads(out.strip().splitlines()[-1])
    assert any("'job_count'" in line for line in summary["skewed_decisions"]) and "decision 'job_count'" in err
    assert main(["run", str(stub_scenario), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    assert rows(replay, "SELECT prompt, choices, completion FROM llm_calls ORDER BY round, phase, agent_id, seq") == \
        rows(run, "SELECT prompt, choices, completion FROM llm_calls ORDER BY round, phase, agent_id, seq")


def test_spread_top_shares_and_agent_filter():
    from simulation.core.health import Spread, decision_spreads

    assert Spread().shares() == {} and Spread().top() == ("", 0.0)
    rows_ = [("vote", "a", '["yes", "no"]', "yes", 1), ("vote", "b", '["no", "yes"]', "no", 1),
             ("vote", "c", '["yes", "no"]', "maybe", 0), ("vote", "d", '["yes", "no"]', "no", 1),
             ("screen", "a", '["pass"]', "pass", 1)]
    s = decision_spreads(rows_)
    assert list(s) == ["screen", "vote"], "sorted by action"
    v = s["vote"]
    assert v.calls == 4 and v.valid == 3 and v.first == 2 and v.agents == {"a", "b", "d"}
    assert v.shares() == {"yes": 1 / 3, "no": 2 / 3} and v.top() == ("no", 2 / 3)
    tie = decision_spreads([("x", "a", '["p", "q"]', "p", 1), ("x", "b", '["p", "q"]', "q", 1)])["x"]
    assert tie.top() == ("q", 0.5), "a tie goes to the greater name, whatever the order of answers"
    # only the given agents count, and every given agent's call is seen (not only up to the first outsider)
    only = decision_spreads(rows_, agents={"b", "d"})
    assert set(only) == {"vote"} and only["vote"].calls == 2 and only["vote"].agents == {"b", "d"}
    after_outsider = decision_spreads([("v", "z", '["a"]', "a", 1), ("v", "b", '["a"]', "a", 1)], agents={"b"})
    assert after_outsider["v"].calls == 1


def test_health_values_are_exact_to_six_places_and_skew_bounds(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    # 3 options, 1/3 each: shares and entropy are rounded to 6 places
    store.add_rows((), [call_row(f"t{i}", ["a", "b", "c"], "abc"[i % 3], "three") for i in range(9)]
                   + [call_row("t9", ["a", "b", "c"], "x", "three", valid=False)]
                   + [call_row("z", ["a"], "zz", "none_valid", valid=False)]
                   + [call_row("u", ["a", "b"], "a", "third"), call_row("v", ["a", "b"], "b", "third"),
                      call_row("w", ["a", "b"], "x", "third", valid=False)])
    # exactly 90% on one option from 20 agents: not over SKEW, so not reported
    store.add_rows((), [call_row(f"s{i}", ["p", "q"], "p" if i < 18 else "q", "edge") for i in range(20)])
    # over 90% from 19 agents: too few agents
    store.add_rows((), [call_row(f"f{i}", ["p", "q"], "p", "few") for i in range(19)])
    # over 90% from exactly 20 agents: reported
    store.add_rows((), [call_row(f"g{i}", ["p", "q"], "q", "many") for i in range(20)])
    h = decision_health(store, 1)
    m = h.metrics
    assert m["decision.three.share.a"] == round(1 / 3, 6) == 0.333333
    assert m["decision.three.entropy"] == round(math.log2(3), 6) == 1.584963
    assert m["decision.three.first_share"] == 0.333333 and m["decision.three.invalid_share"] == 0.1
    assert m["decision.none_valid.n"] == 1.0 and m["decision.none_valid.invalid_share"] == 1.0
    assert m["decision.third.invalid_share"] == 0.333333
    assert "decision.none_valid.entropy" not in m and "decision.none_valid.first_share" not in m
    assert m["decision.edge.share.p"] == 0.9 and m["decision.edge.entropy"] > 0
    assert [line.split("'")[1] for line in h.skewed] == ["many"]
    assert "'q' took 20 of 20 answers (100%) from 20 agents; the option listed first took 0%" in h.skewed[0]
    assert decision_health(store, 2).metrics == {}, "another round's calls do not count"
    store.close()
