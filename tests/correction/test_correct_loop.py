"""``gensim correct`` end to end on the stub (real training of the bundled model, tiny data): two
iterations, held-out and control measured, adapters chained, deployments recorded, plot written."""

from __future__ import annotations

import json

from simulation.cli import main
from simulation.testing.procs import stub_stats
from simulation.training import read_manifest
from tests.runs import rows


def test_correct_two_iterations_on_the_stub(stub_scenario, stub, tmp_path, capsys):
    out = tmp_path / "loop"
    assert main(["correct", str(stub_scenario), "--agents", "40", "--iterations", "2", "--max-samples", "12",
                 "--holdout", "0.3", "--control", "0.3", "--out", str(out), "--no-progress", "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    res = json.loads(printed[-1])
    assert len(res["iterations"]) == 2 and res["base_holdout_fail"] is not None
    for i, it in enumerate(res["iterations"], 1):
        assert set(it) == {"holdout_fail", "control_fail", "judge", "train_s", "swap_s", "worst_first_share", "adopted",
                           "reasons", "exam", "max_untrained_drift", "adapter_actions", "order_averaged"}
        assert it["order_averaged"] == [], "the stub server gives no option probabilities: nothing to average"
        assert it["adopted"] is (not it["reasons"]) and it["exam"]["n"] > 0
        metas = [json.loads(x)["meta"] for x in (out / f"data-{i}.jsonl").read_text().splitlines()]
        assert it["adapter_actions"] == sorted({m["action"] for m in metas if m.get("rater") != "anchor"}), \
            "by default the adapter answers the decisions with rated rows alone"
        assert 0 <= it["holdout_fail"] <= 1 and 0 <= it["control_fail"] <= 1 and it["train_s"] > 0
    assert ("correct: the server gives no option probabilities: the decisions the adapter leaves stay decoded "
            "(--untargeted base)") in printed, "said, not silent"
    assert any(line.startswith("  held-out") for line in printed) and any(line.startswith("  control") for line in printed)
    assert (out / "correction.png").stat().st_size > 1000
    report = json.loads((out / "correction.json").read_text())
    groups = report["groups"]
    assert groups["holdout"] and groups["control"] and not set(groups["control"]) & set(groups["treated"])
    # training never saw a held-out agent's call
    for i in (1, 2):
        for line in (out / f"data-{i}.jsonl").read_text().splitlines():
            call = json.loads(line)["meta"]["call_id"]
            src = out / "base" if i == 1 or not report["details"][0]["adopted"] else out / "iter-1"
            (agent,) = rows(src, "SELECT agent_id FROM llm_calls WHERE id = ?", call)[0]
            assert agent not in groups["holdout"]
    m2 = read_manifest(out / "adapter-2")
    assert m2.parent == (str((out / "adapter-1").resolve()) if report["details"][0]["adopted"] else None)
    # each fork: the adapter was deployed at start (lora on the stub), treated agents asked for it,
    # control agents never did, and the loop's figures are in the fork's metrics
    assert stub_stats(stub)["adapters"] == ["adapter-1", "adapter-2"]
    for i in (1, 2):
        fork = out / f"iter-{i}"
        (mode,) = rows(fork, "SELECT json_extract(data, '$.mode') FROM interventions WHERE kind = 'deploy'")[0]
        assert mode == "lora"
        by_model = rows(fork, "SELECT DISTINCT agent_id, model FROM llm_calls WHERE round = 1")
        assert {a for a, m in by_model if m == f"adapter-{i}"} <= set(groups["treated"])
        assert {a for a, m in by_model if m == f"adapter-{i}"}
        assert all(m != f"adapter-{i}" for a, m in by_model if a in groups["control"])
        metrics = dict(rows(fork, "SELECT name, value FROM metrics WHERE name LIKE 'correction.%'"))
        assert metrics["correction.holdout_fail"] == res["iterations"][i - 1]["holdout_fail"]
