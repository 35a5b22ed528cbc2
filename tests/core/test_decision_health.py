"""Decision health per round: option shares, entropy, first-option share, skew warnings; shuffled options."""

from __future__ import annotations

import json

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
