"""The correction loop's bookkeeping, fast: the live stub answers, training is replaced by a stand-in
that writes an adapter folder (the real training runs in ``test_correct_loop.py``). What is checked:
which data each iteration trains on and from which parent, the refusal of an adapter and the smaller
step after it, the A/B share of each fork, and the figures written to the forks and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simulation.correction.loop as loop
from simulation.correction.loop import CorrectOptions, correct
from simulation.training.manifest import AdapterManifest, write_manifest
from tests.runs import rows


@pytest.fixture()
def fake_training(monkeypatch):
    calls: list[dict] = []

    def train(method, data, out, parent=None, epochs=1.0, learning_rate=None, batch_size=8, seed=0, progress=True,
              max_samples=None):
        n = len(Path(data).read_text().splitlines())
        calls.append({"method": method, "data": Path(data).name, "parent": parent, "lr": learning_rate,
                      "batch_size": batch_size, "max_samples": max_samples, "rows": n, "epochs": epochs})
        out.mkdir(parents=True)
        (out / "adapter_config.json").write_text("{}")
        m = AdapterManifest(base_model="smol", method=method, data_file=str(data), data_sha256="0" * 64, samples=n,
                            epochs=epochs, lora_rank=4, learning_rate=learning_rate or 1e-3, train_s=0.5, device="cpu",
                            parent=str(Path(parent).resolve()) if parent else None)
        write_manifest(out, m)
        return m

    monkeypatch.setattr(loop, "train", train)
    return calls


def test_loop_refuses_an_adapter_then_retries_at_half_the_rate(stub_scenario, tmp_path, fake_training, monkeypatch,
                                                                capsys):
    real = loop.collapsed
    verdicts: list[list[str]] = []

    def collapsed(after, before):
        got = ["forced refusal"] if not verdicts else real(after, before)
        verdicts.append(got)
        return got

    monkeypatch.setattr(loop, "collapsed", collapsed)
    out = tmp_path / "loop"
    res = correct(CorrectOptions(str(stub_scenario), iterations=3, agents=24, holdout=0.3, control=0.3, out=str(out),
                                 lr=0.002, max_samples=50, progress=False))
    printed = capsys.readouterr().out
    report = json.loads((out / "correction.json").read_text())
    details = report["details"]
    # iteration 1 refused: iteration 2 trains the same data from the same (no) parent at half the rate
    assert [d["adopted"] for d in details] == [False, *[not v for v in verdicts[1:]]]
    assert details[0]["refused_because"] == ["forced refusal"]
    assert [c["lr"] for c in fake_training[:2]] == [0.002, 0.001]
    assert fake_training[0]["parent"] is None and fake_training[1]["parent"] is None
    assert fake_training[0]["rows"] == fake_training[1]["rows"] > 0, "the same data again"
    assert "NOT adopted: forced refusal" in printed
    assert "next iteration: the same data from the base, learning rate 0.001" in printed
    if details[1]["adopted"]:  # iteration 3 continues from the adopted adapter, on the fork's calls
        assert fake_training[2]["parent"] == out / "adapter-2" and fake_training[2]["lr"] == 0.001
    for c in fake_training:
        assert c["method"] == "sft" and c["batch_size"] == 8 and c["max_samples"] == 50 and c["epochs"] == 1.0
    # no held-out agent's call is ever trained on; groups are disjoint
    groups = report["groups"]
    hold, treated, control = set(groups["holdout"]), set(groups["treated"]), set(groups["control"])
    assert hold and treated and control and not treated & control
    source = out / "base"  # each iteration trains on the calls of the last adopted run
    for i in (1, 2, 3):
        lines = (out / f"data-{i}.jsonl").read_text().splitlines()
        assert lines
        for line in lines:
            (agent,) = rows(source, "SELECT agent_id FROM llm_calls WHERE id = ?", json.loads(line)["meta"]["call_id"])[0]
            assert agent not in hold
        if details[i - 1]["adopted"]:
            source = out / f"iter-{i}"
    # each fork: the adapter on 1 - control of the agents, and the loop's figures in its metrics
    for i, it in enumerate(res["iterations"], start=1):
        fork = out / f"iter-{i}"
        ((data,),) = rows(fork, "SELECT data FROM interventions WHERE kind = 'deploy'")
        llm = json.loads((fork / "config.json").read_text())["simulation"]["llm"]
        assert llm["adapter_share"] == pytest.approx(0.7) and llm["adapter_name"] == f"adapter-{i}"
        users = {a for (a,) in rows(fork, "SELECT DISTINCT agent_id FROM llm_calls WHERE model = ?", f"adapter-{i}")}
        assert users and users <= treated, "only treated agents ask for the adapter"
        metrics = dict(rows(fork, "SELECT name, value FROM metrics WHERE round = 1 AND name LIKE 'correction.%'"))
        assert metrics["correction.train_s"] == 0.5 == it["train_s"]
        if it["holdout_fail"] is not None:
            assert metrics["correction.holdout_fail"] == pytest.approx(it["holdout_fail"])
        assert it["swap_s"] == pytest.approx(json.loads(data)["seconds"])
        assert details[i - 1]["samples"] == fake_training[i - 1]["rows"]
    assert res["base_holdout_fail"] == report["base_holdout_fail"] and len(res["iterations"]) == 3
    assert (out / "correction.png").stat().st_size > 1000


def test_loop_with_a_base_run_and_ppo(stub_scenario, tmp_path, fake_training):
    from simulation.cli import main

    base = tmp_path / "base"
    assert main(["run", str(stub_scenario), "--agents", "20", "--rounds", "1", "--out", str(base), "--no-progress"]) == 0
    out = tmp_path / "loop"
    res = correct(CorrectOptions(str(stub_scenario), iterations=1, method="ppo", base=str(base), out=str(out),
                                 progress=False))
    assert fake_training[0]["method"] == "ppo" and fake_training[0]["batch_size"] == 4
    assert fake_training[0]["data"] == "data-1.jsonl" and fake_training[0]["lr"] is None
    first = json.loads((out / "data-1.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "completion", "reward", "meta"}, "ppo trains on reward rows"
    assert not (out / "base").exists(), "the given base run is used, not a new one"
    assert len(res["iterations"]) == 1
