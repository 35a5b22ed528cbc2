"""The correction loop's bookkeeping, fast: the in-process fake model answers (the live stub in the judge
test), training is replaced by a stand-in that writes an adapter folder (the real training runs in
``test_correct_loop.py``). What is checked:
which data each iteration trains on and from which parent, the refusal of an adapter and the smaller
step after it, the A/B share of each fork, and the figures written to the forks and the report."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

import simulation.correction.loop as loop
from simulation.config import ConfigError
from simulation.correction import exam as ex
from simulation.correction.loop import CorrectOptions, correct
from simulation.training.data import file_hash
from simulation.training.manifest import AdapterManifest, write_manifest
from tests.runs import rows


@pytest.fixture()
def fake_training(monkeypatch):
    calls: list[dict] = []

    def train(method, data, out, parent=None, epochs=1.0, learning_rate=None, batch_size=8, seed=0, progress=True,
              max_samples=None, objective="tokens", lr_schedule="constant", save_every=None):
        n = len(Path(data).read_text().splitlines())
        calls.append({"method": method, "data": Path(data).name, "parent": parent, "lr": learning_rate,
                      "batch_size": batch_size, "max_samples": max_samples, "rows": n, "epochs": epochs,
                      "objective": objective, "seed": seed, "lr_schedule": lr_schedule, "save_every": save_every})
        out.mkdir(parents=True)
        (out / "adapter_config.json").write_text("{}")
        m = AdapterManifest(base_model="smol", method=method, data_file=str(data), data_sha256=file_hash(Path(data)),
                            samples=n,
                            epochs=epochs, lora_rank=4, learning_rate=learning_rate or 1e-3, train_s=0.5, device="cpu",
                            lr_schedule=lr_schedule if method == "sft" else None, parent=str(Path(parent).resolve()) if parent else None)
        write_manifest(out, m)
        return m

    monkeypatch.setattr(loop, "train", train)
    return calls


@pytest.fixture()
def dataset_writes(monkeypatch):
    """Each call the loop makes of ``write_dataset`` (run and file names, kind, keywords), passed on to it."""
    calls: list[dict] = []
    real = loop.write_dataset

    def write_dataset(run, kind, out, **kw):
        calls.append({"run": Path(run).name, "kind": kind, "out": Path(out).name, **kw})
        return real(run, kind, out, **kw)

    monkeypatch.setattr(loop, "write_dataset", write_dataset)
    return calls


def test_loop_refuses_an_adapter_then_retries_at_half_the_rate(tmp_path, fake_training, monkeypatch, capsys):
    real = loop.collapsed
    verdicts: list[list[str]] = []

    def collapsed(after, before, preferred=None, unchecked=frozenset(), discerning=None):
        assert preferred, "the live rule is given the base's position-free shares from the exam"
        # the decisions no check grades are those the exam names no right answer for
        assert unchecked and "search_decision" in unchecked and "screen" not in unchecked, unchecked
        got = ["forced refusal"] if not verdicts else real(after, before, preferred, unchecked)
        verdicts.append(got)
        return got

    monkeypatch.setattr(loop, "collapsed", collapsed)
    out = tmp_path / "loop"
    # the fake model answers a reordered prompt at random: every decision "drifts"; --max-drift 1 lets it
    res = correct(CorrectOptions("job_seeking", iterations=3, agents=24, holdout=0.3, control=0.3, out=str(out),
                                 lr=0.002, max_samples=50, progress=False, overrides=["llm.backend=fake"], max_drift=1.0))
    printed = capsys.readouterr().out
    assert "warning" not in printed
    assert rows(out / "base", "SELECT MAX(round) FROM actions") == [(3,)], "three rounds by default"
    assert rows(out / "iter-1", "SELECT MIN(round), MAX(round) FROM llm_calls WHERE model = 'adapter-1'") == [(1, 3)]
    exam_rounds = {json.loads(x)["round"] for x in (out / "iter-1" / "exam.jsonl").read_text().splitlines()}
    assert exam_rounds == {1, 2, 3}, "the exam holds every round's calls"
    for run in ("base", "iter-1"):  # options are shuffled by default, in the base run and its forks
        assert json.loads((out / run / "config.json").read_text())["simulation"]["llm"]["shuffle_options"] is True
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
    # announced after each refused iteration but the last, which has none
    assert printed.count("next iteration:") == sum(not d["adopted"] for d in details[:-1])
    if details[1]["adopted"]:  # iteration 3 continues from the adopted adapter, on the fork's calls
        assert fake_training[2]["parent"] == out / "adapter-2" and fake_training[2]["lr"] == 0.001
    for c in fake_training:
        assert c["method"] == "sft" and c["batch_size"] == 8 and c["max_samples"] == 50 and c["epochs"] == 1.0
        assert c["objective"] == "choices", "the loop's sft trains the choice loss"
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


def test_loop_with_a_base_run_and_ppo(tmp_path, fake_training):
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    out = tmp_path / "loop"
    res = correct(CorrectOptions("job_seeking", iterations=1, method="ppo", base=str(base), out=str(out),
                                 progress=False))
    assert fake_training[0]["method"] == "ppo" and fake_training[0]["batch_size"] == 4
    assert fake_training[0]["objective"] == "tokens", "ppo has no choice loss"
    assert fake_training[0]["data"] == "data-1.jsonl" and fake_training[0]["lr"] is None
    first = json.loads((out / "data-1.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "completion", "reward", "meta"}, "ppo trains on reward rows"
    assert not (out / "base").exists(), "the given base run is used, not a new one"
    assert len(res["iterations"]) == 1


def test_a_refused_last_iteration_announces_no_next_one(tmp_path, fake_training, monkeypatch):
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    monkeypatch.setattr(loop, "collapsed", lambda after, before, preferred=None, unchecked=frozenset(), discerning=None:
                        ["forced refusal"])
    lines: list[str] = []
    res = correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "loop"), progress=False,
                                 exam=False), emit=lines.append)
    assert res["iterations"][0]["adopted"] is False
    assert any("NOT adopted: forced refusal" in x for x in lines)
    assert not any("next iteration" in x for x in lines), lines


def test_a_loop_stopped_mid_way_keeps_the_iterations_it_measured(tmp_path, fake_training, monkeypatch):
    """correction.json and its plot are written after every iteration, not only at the end: a loop
    stopped in its second iteration's training (hours in, on a CPU) keeps the first's figures."""
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    trained = loop.train

    def train(*args, **kw):
        if fake_training:  # the second call: stopped as Ctrl-C stops it
            raise KeyboardInterrupt
        return trained(*args, **kw)

    monkeypatch.setattr(loop, "train", train)
    out = tmp_path / "loop"
    with pytest.raises(KeyboardInterrupt):
        correct(CorrectOptions("job_seeking", iterations=3, method="ppo", base=str(base), out=str(out), progress=False))
    report = json.loads((out / "correction.json").read_text())
    assert len(report["iterations"]) == 1 and len(report["details"]) == 1
    assert (out / "correction.png").is_file()


def test_exam_line_states_the_figures():
    fig = {"n": 40, "agents": 6, "balanced_accuracy": {"screen": {"base": 0.5, "adapter": 0.75, "lo": 0.6, "hi": 0.9}},
           "fail": {"base": 0.3, "adapter": 0.1}, "cut": 0.6667, "cut_ci": [0.2, 0.9],
           "first_share": {"screen": {"base": 1.0, "adapter": 0.5}, "job_count": {"base": None, "adapter": None}},
           "checks": {"low_pay": {"graded": {"base": 93, "adapter": 0}}, "fit": {"graded": {"base": 10, "adapter": 5}}}}
    assert loop._exam_line(fig, {}) == (
        "  exam      40 calls of 6 held-out agents: screen balanced accuracy 50% -> 75% [60%, 90%]; "
        "fail 0.30 -> 0.10, cut 67% [20%, 90%]\n            first-listed share: screen 100% -> 50%"
        "\n            checks grading under half as many answers: low_pay 93 -> 0"), "half (fit 10 -> 5) is not under"
    assert loop._exam_line(fig, {"screen": 0.27, "offer_decision": 0.0}).endswith(
        "low_pay 93 -> 0\n            drift on calls no check grades: screen 0.27, offer_decision 0.00")
    quiet = {**fig, "balanced_accuracy": {}, "fail": {"base": None, "adapter": None}, "first_share": {}, "checks": {}}
    assert loop._exam_line(quiet, {}) == "  exam      40 calls of 6 held-out agents: no check graded an answer"


def test_group_line_states_the_figures():
    from simulation.correction.measure import GroupMeasure

    g = GroupMeasure(checked=10, failed=3, by_check={"rule": (2, 6), "other": (1, 4)},
                     decisions={"screen": {"pass": 0.75, "reject": 0.25}}, answers={"screen": 8},
                     first_share={"screen": 0.5}, judge=3.25)
    assert loop._group_line("held-out", g) == (
        "  held-out  fail 0.3 (rule 2/6, other 1/4); worst first-option share 50%; judge 3.25\n"
        "            decisions: screen pass 75% (first-listed 50%)")
    assert loop._group_line("control", GroupMeasure()) == (
        "  control   fail n/a (no checks); worst first-option share n/a (no decisions)\n            decisions: none")


def test_correction_figure_shows_both_groups_and_the_judge():
    import matplotlib.pyplot as plt

    result = {"base_holdout_fail": 0.4, "base_control_fail": 0.35, "judge_base": 2.5,
              "iterations": [{"holdout_fail": 0.2, "control_fail": 0.3, "judge": None},
                             {"holdout_fail": 0.1, "control_fail": None, "judge": 4.0}]}
    fig = loop.correction_figure(result)
    ax, ax2 = fig.axes
    (hold, ctl), (judge,) = ax.get_lines(), ax2.get_lines()
    assert list(hold.get_xdata()) == [0, 1, 2] and list(hold.get_ydata()) == [0.4, 0.2, 0.1]
    assert list(ctl.get_ydata())[:2] == [0.35, 0.3] and hold.get_label() == "held-out agents (adapter)"
    assert ctl.get_label() == "control agents (base model)" and ctl.get_linestyle() == "--"
    ys = list(judge.get_ydata())
    assert ys[0] == 2.5 and ys[1] != ys[1] and ys[2] == 4.0, "a missing judge score is a gap"
    assert ax.get_xlabel() == "correction iteration (0 = base model)" and ax.get_ylim()[0] == 0
    assert ax.get_ylabel() == "share of checked actions failing" and ax.get_title() == "GenSim correction loop"
    assert ax2.get_ylim() == (1, 5) and ax2.get_ylabel() == "judge score (held-out)"
    assert list(ax.get_xticks()) == [0, 1, 2] and ax.get_legend() is not None
    plt.close(fig)
    no_judge = loop.correction_figure({**result, "judge_base": None,
                                       "iterations": [{**i, "judge": None} for i in result["iterations"]]})
    assert len(no_judge.axes) == 1
    plt.close(no_judge)


def test_loop_options_are_checked_before_anything_runs(tmp_path):
    from dataclasses import replace

    from simulation.config import ConfigError

    base = CorrectOptions("job_seeking", out=str(tmp_path / "c"))
    kinds = ("--method/--rater", "sft|ppo and checks|judge")
    ranges = ("--iterations/--holdout/--control", "iterations >= 1; holdout and control strictly between 0 and 1")
    drift = ("--max-drift/--permute", "max-drift between 0 and 1; permute 0 or more")
    bad = [(dict(method="dpo"), kinds), (dict(rater="people"), kinds), (dict(iterations=0), ranges),
           (dict(holdout=0.0), ranges), (dict(holdout=1.0), ranges), (dict(control=0.0), ranges),
           (dict(control=1.0), ranges), (dict(control=-0.5), ranges),
           (dict(epochs=0.0), ("--epochs", "must be a finite number above 0, got 0.0")),
           (dict(epochs=float("inf")), ("--epochs", "must be a finite number above 0, got inf")),
           (dict(lr=-1.0), ("--lr", "must be a finite number above 0, got -1.0")),
           (dict(lr=float("nan")), ("--lr", "must be a finite number above 0, got nan")),
           (dict(rounds=0), ("--rounds", "must be 1 or more, got 0")), (dict(max_drift=1.5), drift), (dict(max_drift=-0.1), drift), (dict(permute=-1), drift),
           (dict(lr_schedule="cosine"), ("--lr-schedule", "constant or linear (linear: sft only), got 'cosine' with sft")),
           (dict(method="ppo", lr_schedule="linear"), ("--lr-schedule", "constant or linear (linear: sft only), "
                                                                         "got 'linear' with ppo")),
           (dict(anchor_power=0.0), ("--anchor-power", "must be a finite number above 0, got 0.0")),
           (dict(method="ppo", anchor_power=2.0), ("--anchor-power", "sft only (ppo trains no anchors)")),
           (dict(ungraded="keep"), ("--ungraded", "leave or anchor, got 'keep'")),
           (dict(ungraded="anchor", rated_rows="spread"), ("--ungraded", "anchor is for sft with --rated-rows all "
                                                            "(--rated-rows spread anchors those calls already; ppo "
                                                            "trains no anchors)")),
           (dict(adapter_scope="some"), ("--adapter-scope", "all or targeted, got 'some'")),
           (dict(method="ppo", save_every=25), ("--save-every", "a whole number of steps, 1 or more, for sft's "
                                                "choices objective only; got 25 with ppo choices")),
           (dict(objective="tokens", save_every=25), ("--save-every", "a whole number of steps, 1 or more, for sft's "
                                                      "choices objective only; got 25 with sft tokens")),
           (dict(save_every=0), ("--save-every", "a whole number of steps, 1 or more, for sft's choices objective "
                                 "only; got 0 with sft choices"))]
    for change, (name, reason) in bad:
        with pytest.raises(ConfigError) as e:
            correct(replace(base, **change))
        (problem,) = e.value.problems
        assert (problem.file, problem.field, problem.reason) == ("<command line>", name, reason), change
        assert not (tmp_path / "c").exists(), change
    nope = str(tmp_path / "nope")
    with pytest.raises(ConfigError) as e:
        correct(replace(base, base=nope))
    (problem,) = e.value.problems
    assert (problem.file, problem.field, problem.reason) == (nope, "--base", "no such folder")
    assert not (tmp_path / "c").exists()


def test_too_few_agents_for_the_groups_is_one_error(tmp_path, fake_training):
    from simulation.config import ConfigError
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=2)
    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "c"), progress=False),
                emit=lambda line: None)
    (problem,) = e.value.problems
    assert (problem.file, problem.field) == ("<command line>", "--agents")
    assert problem.reason == ("2 agents leave no held-out treated agent or no control agent: use more agents")
    assert fake_training == []


def test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else(tmp_path, fake_training,
                                                                                    dataset_writes):
    """--adapter-scope targeted: no anchor row for an unrated decision; the fork routes only the rated
    decisions' calls to the adapter (llm.adapter_actions) and the exam answers the rest with the base."""
    from simulation.correction.datasets import rated_actions
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", "job_seeking", 24, 2)
    out = tmp_path / "c"
    lines: list[str] = []
    res = correct(CorrectOptions("job_seeking", base=str(base), out=str(out), holdout=0.3, progress=False,
                                 max_samples=400, max_drift=1.0, adapter_scope="targeted"), emit=lines.append)
    decisions = {a for (a,) in rows(base, "SELECT DISTINCT action FROM llm_calls")}
    rated = rated_actions(base)
    assert rated and decisions - rated, (decisions, rated)
    (w,) = dataset_writes
    assert w["skip"] == decisions - rated, "the unrated decisions get no row"
    trained = {json.loads(x)["meta"]["action"] for x in (out / "data-1.jsonl").read_text().splitlines()}
    assert trained and trained <= rated
    (d,) = json.loads((out / "correction.json").read_text())["details"]
    scope = d["adapter_actions"]
    assert scope == sorted(trained) == res["iterations"][0]["adapter_actions"]
    assert any(f"the adapter answers {', '.join(scope)} only" in x for x in lines if x.startswith("iteration 1:"))
    fork = out / "iter-1"
    llm = json.loads((fork / "config.json").read_text())["simulation"]["llm"]
    assert llm["adapter_actions"] == scope and llm["adapter_name"] == "adapter-1"
    routed = dict(rows(fork, "SELECT action, GROUP_CONCAT(DISTINCT COALESCE(model, '')) FROM llm_calls "
                             "WHERE round >= 1 GROUP BY action"))
    assert {a for a, m in routed.items() if "adapter-1" in m.split(",")} == set(scope) & set(routed)
    assert set(scope) & set(routed), "some treated agent made a call the adapter answers"
    assert all(m == "" for a, m in routed.items() if a not in scope), routed
    exam = [json.loads(x) for x in (fork / "exam.jsonl").read_text().splitlines()]
    outside = [r for r in exam if r["decision"] not in scope]
    inside = [r for r in exam if r["decision"] in scope]
    assert outside and inside
    assert all(r["answers"]["adapter"] == r["answers"]["base"] for r in outside)
    assert all(r["adapter_probs"] == r["base_probs"] for r in outside)
    assert d["max_untrained_drift"] in (0.0, None)


def test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities(
        tmp_path, fake_training, dataset_writes):
    """--untargeted averaged (the default on a base run that shuffles its options): the fork answers the
    choice decisions outside the scope (memory.* aside) by llm.order_averaged, and the exam's adapter side
    for them is an option drawn from the base's order-averaged probabilities of each call; the base side
    stays the base's own answer. A base in one fixed order cannot be averaged: named, not run."""
    from simulation.llm.averaging import drawn_option
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", "job_seeking", 24, 2, "llm.shuffle_options=true")
    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "x"), adapter_scope="all",
                               untargeted="averaged"))
    assert e.value.problems[0].field == "--untargeted" and "needs --adapter-scope targeted" in e.value.problems[0].reason
    plain = fake_run(tmp_path / "plain", "job_seeking", 12, 1)
    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(plain), out=str(tmp_path / "y"), untargeted="averaged",
                               progress=False), emit=lambda _: None)
    assert e.value.problems[0].field == "--untargeted" and "llm.shuffle_options=false" in e.value.problems[0].reason
    assert not (tmp_path / "y" / "data-1.jsonl").exists(), "refused before any work"
    out = tmp_path / "c"
    res = correct(CorrectOptions("job_seeking", base=str(base), out=str(out), holdout=0.3, progress=False,
                                 max_samples=400, max_drift=1.0))
    (it,) = res["iterations"]
    scope = set(it["adapter_actions"])
    choices = {a for (a,) in rows(base, "SELECT DISTINCT action FROM llm_calls WHERE choices IS NOT NULL")}
    averaged = {a for a in choices - scope if not a.startswith("memory.")}
    assert averaged and it["order_averaged"] == sorted(averaged)
    fork = out / "iter-1"
    assert json.loads((fork / "config.json").read_text())["simulation"]["llm"]["order_averaged"] == sorted(averaged)
    how = dict(rows(fork, "SELECT action, GROUP_CONCAT(DISTINCT COALESCE(finish_reason, '')) FROM llm_calls "
                          "WHERE round >= 1 GROUP BY action"))
    assert {a for a, f in how.items() if "order_averaged" in f.split(",")} == averaged & set(how)
    assert all(f == "order_averaged" for a, f in how.items() if a in averaged), how
    exam = [json.loads(x) for x in (fork / "exam.jsonl").read_text().splitlines()]
    drawn = [r for r in exam if r["decision"] in averaged]
    seed = json.loads((base / "config.json").read_text())["simulation"]["seed"]
    assert drawn and all(r["adapter_probs"] and r["answers"]["adapter"] == drawn_option(
        r["adapter_probs"], f"exam:{seed}:{r['call_id']}") for r in drawn)
    assert any(r["answers"]["adapter"] != r["answers"]["base"] for r in drawn), "the base side is still decoded"
    assert all(r["answers"]["adapter"] == r["answers"]["base"] for r in exam
               if r["decision"] not in scope and r["decision"] not in averaged)
    # ppo asks no anchors: whether the server gives probabilities is asked of one call, and it does
    ppo = correct(CorrectOptions("job_seeking", method="ppo", base=str(base), out=str(tmp_path / "p"), holdout=0.3,
                                 progress=False, max_samples=400, max_drift=1.0), emit=lambda _: None)
    left = choices - set(ppo["iterations"][0]["adapter_actions"])
    assert ppo["iterations"][0]["order_averaged"] == sorted(a for a in left if not a.startswith("memory.")) != []


def test_untargeted_averaging_needs_option_probabilities(tmp_path, fake_training, dataset_writes, monkeypatch):
    """A server without option probabilities (not vLLM): asked for, --untargeted averaged is a named error
    before training; by default the decisions the adapter leaves stay decoded, and the loop says so."""
    from simulation.llm.scoring import FakeOptionScorer
    from simulation.llm.types import LLMError
    from tests.runs import fake_run

    async def none(self, messages, options, model=None):
        raise LLMError("no prompt log-probabilities here")

    monkeypatch.setattr(FakeOptionScorer, "option_probs", none)
    base = fake_run(tmp_path / "base", "job_seeking", 24, 1, "llm.shuffle_options=true")
    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "x"), holdout=0.3, progress=False,
                               max_samples=200, untargeted="averaged"), emit=lambda _: None)
    assert e.value.problems[0].field == "--untargeted" and "gives none" in e.value.problems[0].reason
    assert not fake_training, "refused before training"
    lines: list[str] = []
    res = correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "c"), holdout=0.3, progress=False,
                                 max_samples=200, max_drift=1.0), emit=lines.append)
    assert res["iterations"][0]["order_averaged"] == [] and fake_training
    assert ("correct: the server gives no option probabilities: the decisions the adapter leaves stay decoded "
            "(--untargeted base)") in lines


def test_loop_passes_its_options_to_each_step(tmp_path, fake_training, dataset_writes, monkeypatch):
    """What the loop hands the rater, the dataset writer and the trainer, for sft and for ppo, and the
    lines it prints, in order."""
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    rated: list[tuple[str, dict]] = []
    real_rate = loop.rate_run

    def rate_run(run, **kw):
        rated.append((Path(run).name, kw))
        return real_rate(run, **kw)

    monkeypatch.setattr(loop, "rate_run", rate_run)
    for method, kind, batch in (("sft", "sft", 8), ("ppo", "reward", 4)):
        rated.clear(), dataset_writes.clear(), fake_training.clear()
        out = tmp_path / f"loop-{method}"
        lines: list[str] = []
        schedule = "linear" if method == "sft" else "constant"
        res = correct(CorrectOptions("job_seeking", method=method, base=str(base), out=str(out), samples=9, holdout=0.3,
                                     progress=False, max_samples=77, lr_schedule=schedule,
                                     save_every=25 if method == "sft" else None), emit=lines.append)
        assert rated == [("base", {"by": "checks", "judge": None, "sample": None, "scenario": "job_seeking",
                                   "progress": False})], "checks rate every call: --samples is for the judge"
        report = json.loads((out / "correction.json").read_text())
        hold = set(report["groups"]["holdout"])
        (w,) = dataset_writes
        assert w == {"run": "base", "kind": kind, "out": "data-1.jsonl", "rater": "check:", "exclude_agents": w["exclude_agents"],
                     "anchor": method == "sft", "balance": method == "sft", "permute": 5 if method == "sft" else 0,
                     "seed": w["seed"], "anchor_answers": None, "unsure": w["unsure"], "anchor_targets": None,
                     "keep": frozenset({"screen", "offer_decision", "respond_offers", "apply_posting"}) if method == "sft" else frozenset(),
                     "skip": w["skip"]}
        # the adapter answers the rated decisions alone (--adapter-scope targeted): the others get no rows
        assert {"search_decision", "job_count", "memory.importance"} <= w["skip"]
        assert not w["skip"] & {"screen", "offer_decision", "respond_offers", "apply_posting"}
        # sft: the training agents' checked calls whose checks name no right option; ppo trains on scores
        unsure_agents = {a for (a,) in rows(base, "SELECT agent_id FROM llm_calls WHERE id IN "
                                            f"({','.join(map(str, w['unsure'])) or '0'})")}
        assert (bool(w["unsure"]), unsure_agents & hold) == (method == "sft", set())
        base_seed = int(rows(base, "SELECT value FROM meta WHERE key = 'seed'")[0][0])
        assert w["seed"] == base_seed
        assert set(w["exclude_agents"]) == hold
        (t,) = fake_training
        assert (t["method"], t["batch_size"], t["max_samples"], t["parent"], t["lr"], t["lr_schedule"], t["save_every"]) == \
            (method, batch, 77, None, None, schedule, 25 if method == "sft" else None)
        assert t["seed"] == base_seed, "training takes the base run's seed by default"
        (d,) = report["details"]
        assert set(d) == {"holdout_fail", "control_fail", "judge", "judge_control", "train_s", "swap_s", "samples",
                          "worst_first_share", "by_check", "adopted", "refused_because", "learning_rate", "exam",
                          "max_untrained_drift", "train_seed", "lr_schedule", "anchor_power", "adapter_actions", "ungraded",
                          "order_averaged", "picked_step", "pick"}
        assert d["picked_step"] is None and d["pick"] is None, "--pick last (the default) serves the finished adapter"
        assert d["order_averaged"] == [], "a base in one fixed order keeps the decisions the adapter leaves decoded"
        assert d["ungraded"] == ("anchor" if method == "sft" else "leave"), \
            "sft anchors a checked decision's ungraded calls by default; ppo trains no anchors"
        assert d["anchor_power"] == 1.0
        assert d["adapter_actions"] and not set(d["adapter_actions"]) & w["skip"], \
            "the adapter answers the decisions it was trained on, by default"
        assert d["train_seed"] == base_seed and d["lr_schedule"] == (schedule if method == "sft" else None)
        assert d["train_s"] == 0.5 and d["samples"] == t["rows"] and d["learning_rate"] == 1e-3
        assert d["judge"] is None and d["judge_control"] is None
        assert d["adopted"] is (not d["refused_because"])
        assert all(isinstance(v, str) and "/" in v for v in d["by_check"].values())
        assert res["iterations"] == [{**{k: d[k] for k in ("holdout_fail", "control_fail", "judge", "train_s", "swap_s",
                                                           "worst_first_share", "adopted", "exam",
                                                           "max_untrained_drift", "adapter_actions", "order_averaged")},
                                      "reasons": d["refused_because"]}]
        assert set(report) == {"base_holdout_fail", "base_control_fail", "judge_base", "not_trained", "iterations",
                               "details", "groups"}
        assert report["not_trained"] == []
        n_hold = len(set(report["groups"]["treated"]) & hold)
        assert lines[0] == f"correct: starting from base run {base}"
        assert lines.pop(1) == ("correct: warning: the base run lists every call's options in one order "
                                "(llm.shuffle_options=false): position bias and option bias cannot be told apart"
                                "; the decisions the adapter leaves stay decoded (--untargeted base)")
        assert lines[1] == (f"iteration 0 (base model; {n_hold} held-out treated, {len(report['groups']['control'])} "
                            "control agents)")
        assert lines[2].startswith("  held-out  fail ")
        assert lines[3] == (f"iteration 1: {t['rows']} {kind} rows from base; training {method}; "
                            f"the adapter answers {', '.join(d['adapter_actions'])} only")
        assert lines[4].startswith("  held-out  fail ") and lines[5].startswith("  control   fail ")
        # the exam: the held-out agents' choice calls of the base run, asked of both models (the fake model
        # answers both alike), graded, written beside the fork
        exam = d["exam"]
        assert set(exam) == {"n", "balanced_accuracy", "base_fail", "adapter_fail", "cut", "cut_ci", "undecided",
                             "ungraded_drift"}
        assert all(v == 0.0 for v in exam["ungraded_drift"].values()), "fake answers: both models alike"
        assert exam["undecided"] and all(isinstance(u, str) for u in exam["undecided"]), "fake answers: nothing moved"
        written = (out / "iter-1" / "exam.jsonl").read_text().splitlines()
        assert exam["n"] == len(written) > 0
        exam_calls = {json.loads(w)["call_id"] for w in written}
        assert {a for c, a in rows(base, "SELECT id, agent_id FROM llm_calls") if c in exam_calls} <= hold
        assert exam["base_fail"] == exam["adapter_fail"]
        assert d["max_untrained_drift"] is None, "a scoped adapter answers no decision nothing targeted"
        assert json.loads((out / "iter-1" / "exam.json").read_text())["n"] == exam["n"]
        assert lines[6].startswith(f"  exam      {exam['n']} calls of ")
        assert "\n            first-listed share: " in lines[6]
        undecided = [line for line in lines if line.startswith("            undecided: ")]
        assert [line.removeprefix("            undecided: ") for line in undecided] == exam["undecided"]
        assert lines[7 + len(undecided)].startswith(f"  train 0s, swap {d['swap_s']:.1f}s")
        assert lines[-1] == f"correct: {out / 'correction.json'}, {out / 'correction.png'}"


def test_anchor_power_sharpens_the_anchors_targets_and_nothing_else(tmp_path, fake_training, dataset_writes,
                                                                    monkeypatch):
    """--anchor-power K: each anchor's target goes to the dataset raised to K and renormalised (the base's
    pick kept, with a margin); its drawn answer is unchanged; K=1 passes the probabilities as they came."""
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    targets = {7: {"search": 0.6, "wait": 0.4}, 9: {"1": 0.5, "2": 0.3, "3": 0.2}}
    monkeypatch.setattr(loop, "_anchor_answers", lambda *a, **kw: loop.Anchors({7: "wait", 9: "2"}, targets))
    got = {}
    for power in (1.0, 2.0):
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / str(power)), holdout=0.3,
                               progress=False, exam=False, anchor_power=power), emit=lambda line: None)
        (w,) = dataset_writes
        dataset_writes.clear()
        assert w["anchor_answers"] == {7: "wait", 9: "2"}
        got[power] = w["anchor_targets"]
        (d,) = json.loads((tmp_path / str(power) / "correction.json").read_text())["details"]
        assert d["anchor_power"] == power
    assert got[1.0] == targets
    assert got[2.0][7] == pytest.approx({"search": 0.36 / 0.52, "wait": 0.16 / 0.52})
    assert got[2.0][9] == pytest.approx({"1": 0.25 / 0.38, "2": 0.09 / 0.38, "3": 0.04 / 0.38})


def test_rated_rows_all_keeps_the_checked_decisions_rows_and_drops_their_unsure_calls(tmp_path, fake_training,
                                                                                       dataset_writes, monkeypatch):
    """--rated-rows all (the default): the dataset marks the graded choice decisions' rated rows to be
    kept whole, and their unsure calls get no anchor answer (so they are left out); spread: neither;
    all with --ungraded anchor: kept whole, and the unsure calls anchored as spread anchors them."""
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    seen: dict[str, dict] = {}

    def anchor_answers(source, exclude, seed, progress, unsure=(), rows=None, permute=5, skip=frozenset()):
        seen[policy]["anchored"] = sorted({u.decision for u in unsure})
        return None

    monkeypatch.setattr(loop, "_anchor_answers", anchor_answers)
    for policy in ("all", "spread", "anchor"):
        seen[policy] = {}
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / policy), holdout=0.3, progress=False,
                               rated_rows="all" if policy == "anchor" else policy,
                               ungraded="anchor" if policy == "anchor" else "leave", exam=False), emit=lambda line: None)
        (w,) = dataset_writes
        seen[policy].update(keep=w["keep"], unsure=w["unsure"])
        dataset_writes.clear()
    checked = {"screen", "offer_decision", "respond_offers", "apply_posting"}
    assert seen["all"]["keep"] == checked and seen["spread"]["keep"] == frozenset()
    assert seen["spread"]["anchored"], "spread: the unsure screenings are anchored"
    assert set(seen["spread"]["anchored"]) <= checked and seen["all"]["anchored"] == []
    assert seen["all"]["unsure"] == seen["spread"]["unsure"], "the same unsure calls; all leaves them out"
    assert seen["anchor"]["keep"] == checked and seen["anchor"]["unsure"] == seen["all"]["unsure"]
    assert seen["anchor"]["anchored"] == seen["spread"]["anchored"], "--ungraded anchor: the unsure calls anchored"
    from simulation.config import ConfigError

    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "x"), rated_rows="some"))
    assert e.value.problems[0].field == "--rated-rows"


def test_no_train_rates_and_examines_a_decision_but_trains_none_of_its_calls(tmp_path, fake_training,
                                                                             monkeypatch):
    """--no-train respond_offers: no row of it in the data (its rated rows, repeats and reorderings),
    none of its calls asked for anchor probabilities; the other checked decisions train as before; an
    unknown decision is one error naming the run's decisions, before anything is rated."""
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", "job_seeking", 40, 2)
    asked: dict[str, tuple[set[str], set[str]]] = {}
    real = loop._anchor_answers

    def anchor_answers(source, exclude, seed, progress, unsure=(), rows=None, permute=5, skip=frozenset()):
        asked[name] = (set(skip), {u.decision for u in unsure})
        return real(source, exclude, seed, progress, unsure, rows, permute, skip)

    monkeypatch.setattr(loop, "_anchor_answers", anchor_answers)
    candidates_skip: list[set[str]] = []
    real_candidates = loop.anchor_candidates

    def anchor_candidates(run, exclude=frozenset(), skip=frozenset()):
        candidates_skip.append(set(skip))
        return real_candidates(run, exclude, skip)

    monkeypatch.setattr(loop, "anchor_candidates", anchor_candidates)
    actions = {}
    for name, skip in (("all", ()), ("skip", ("respond_offers",))):
        res = correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / name), holdout=0.3,
                                     progress=False, exam=False, rated_rows="spread", no_train=skip,
                                     adapter_scope="all"),
                      emit=lambda line: None)
        rows_ = [json.loads(x) for x in (tmp_path / name / "data-1.jsonl").read_text().splitlines()]
        actions[name] = Counter(r["meta"]["action"] for r in rows_)
        assert res["not_trained"] == list(skip)
    assert actions["all"]["respond_offers"] > 0 and "respond_offers" not in actions["skip"]
    assert actions["skip"] == Counter({a: n for a, n in actions["all"].items() if a != "respond_offers"})
    targeted = {n: loop._targeted(tmp_path / n / "data-1.jsonl") for n in actions}
    assert targeted["skip"] == targeted["all"] - {"respond_offers"}, "the guard holds it like an untargeted one"
    assert "respond_offers" in targeted["all"]
    assert asked["all"][0] == set() and asked["skip"][0] == {"respond_offers"}
    assert "respond_offers" not in asked["skip"][1] and asked["skip"][1] == asked["all"][1] - {"respond_offers"}
    assert candidates_skip == [set(), {"respond_offers"}], "no anchor probabilities asked for its calls"
    from simulation.config import ConfigError

    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "x"), no_train=("respond",)),
                emit=lambda line: None)
    p = e.value.problems[0]
    assert p.field == "--no-train" and "respond:" in p.reason and "respond_offers" in p.reason
    assert not (tmp_path / "x" / "data-1.jsonl").exists()


def test_train_seed_varies_training_alone_and_seed_must_match_the_base(tmp_path, fake_training, dataset_writes):
    """``--train-seed`` reseeds training (its row sample, LoRA start, batch order) and nothing else: the
    dataset is written with the base run's seed, as without it. ``--seed`` differing from the base run's
    recorded seed is refused before anything is written (it used to be ignored silently)."""
    from simulation.config import ConfigError
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=20)
    base_seed = int(rows(base, "SELECT value FROM meta WHERE key = 'seed'")[0][0])
    out = tmp_path / "t"
    correct(CorrectOptions("job_seeking", base=str(base), out=str(out), holdout=0.3, progress=False, max_samples=40,
                           train_seed=base_seed + 7, seed=base_seed), emit=lambda line: None)
    assert [w["seed"] for w in dataset_writes] == [base_seed] and [c["seed"] for c in fake_training] == [base_seed + 7]
    (d,) = json.loads((out / "correction.json").read_text())["details"]
    assert d["train_seed"] == base_seed + 7, "the report says which seed trained the adapter"
    with pytest.raises(ConfigError) as e:
        correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "s"), seed=base_seed + 1,
                               progress=False), emit=lambda line: None)
    (p,) = e.value.problems
    assert p.field == "--seed" and f"seed {base_seed}" in p.reason and "--train-seed" in p.reason
    assert not (tmp_path / "s").exists(), "refused before the loop's folder is made"
    assert len(fake_training) == 1


def test_swap_seconds_and_recorded_figures(tmp_path):
    from simulation.store import RunStore

    store = RunStore(tmp_path / "run.sqlite")
    store.add_intervention(1, "deploy", "a", {"seconds": 1.25})
    store.add_intervention(1, "deploy", "b", {"seconds": 0.5})
    store.add_intervention(1, "global", "*", {"seconds": 9})
    store.close()
    assert loop._swap_s(tmp_path) == 1.75
    loop._record(tmp_path, {"correction.a": 0.5, "correction.none": None})
    assert rows(tmp_path, "SELECT round, name, value FROM metrics") == [(1, "correction.a", 0.5)]


def test_loop_rated_by_the_judge(stub_scenario, tmp_path, fake_training, dataset_writes, monkeypatch):
    seen: list[dict] = []
    real = loop.rate_run

    def rate_run(run, **kw):
        seen.append({"run": Path(run).name, **{k: kw.get(k) for k in ("by", "sample", "rewrite", "scenario")}})
        return real(run, **kw)

    monkeypatch.setattr(loop, "rate_run", rate_run)
    out = tmp_path / "loop"
    res = correct(CorrectOptions(str(stub_scenario), iterations=1, rater="judge", samples=6, agents=24, out=str(out),
                                 progress=False), emit=lambda line: None)
    # --rated-rows all (the default) keeps rows only when checks rate them: a judge names no right option
    assert [w["keep"] for w in dataset_writes] == [frozenset()]
    assert {d for (d,) in rows(out / "base", "SELECT DISTINCT action FROM llm_calls")} >= {"screen"}, "screenings were judged"
    # the base is judged (with rewrites, as the rater), the judge's ratings become the data, the fork is judged
    assert [(s["run"], s["by"]) for s in seen] == [("base", "judge"), ("base", "judge"), ("iter-1", "judge")]
    assert all(s["sample"] == 6 and s["scenario"] == str(stub_scenario) for s in seen)
    assert seen[0]["rewrite"] is True
    assert res["judge_base"] is not None and res["iterations"][0]["judge"] is not None
    rated = {r for (r,) in rows(out / "base", "SELECT DISTINCT rater FROM ratings")}
    assert rated == {"judge:stub-0"}
    first = json.loads((out / "data-1.jsonl").read_text().splitlines()[0])
    assert first["meta"]["rater"].startswith("judge:")
    seen.clear()
    out2 = tmp_path / "loop2"
    correct(CorrectOptions(str(stub_scenario), iterations=1, judge_score=True, samples=5, agents=24, out=str(out2),
                           progress=False), emit=lambda line: None)
    by = [(s["run"], s["by"], s["rewrite"]) for s in seen]
    assert by == [("base", "judge", False), ("base", "checks", None), ("iter-1", "judge", False)]


def test_helpers_edge_cases(tmp_path, monkeypatch):
    from simulation.correction.measure import GroupMeasure, Groups
    from simulation.store import RunStore

    two = GroupMeasure(decisions={"a": {"x": 1.0}, "b": {"y": 0.5, "z": 0.5}}, answers={"a": 5, "b": 4},
                       first_share={"a": 0.2})
    assert loop._group_line("held-out", two).endswith("decisions: a x 100% (first-listed 20%), b z 50% (first-listed 0%)")
    store = RunStore(tmp_path / "run.sqlite")
    store.add_intervention(1, "deploy", "a", {"mode": "merge"})
    store.add_intervention(1, "deploy", "b", {"seconds": 1.23456})
    store.close()
    assert loop._swap_s(tmp_path) == 1.235
    # _measures: the judge is asked (with the options given) only when judged; both groups read judge ratings then
    calls: list[dict] = []
    monkeypatch.setattr(loop, "rate_run", lambda run, **kw: calls.append(kw))
    seen: list = []
    monkeypatch.setattr(loop, "measure", lambda run, agents, rater: seen.append((sorted(agents), rater)) or rater)
    g = Groups(frozenset({"h"}), frozenset({"h", "t"}), frozenset({"c"}))
    plain = CorrectOptions("s", judge="j", samples=7)
    assert loop._measures(tmp_path, g, plain) == (None, None) and calls == []
    assert seen == [(["h"], None), (["c"], None)]
    seen.clear()
    scored = CorrectOptions("s", judge="j", samples=7, judge_score=True, progress=False)
    assert loop._measures(tmp_path, g, scored) == ("judge:", "judge:")
    assert calls == [{"by": "judge", "judge": "j", "sample": 7, "rewrite": False, "scenario": "s", "progress": False}]


def test_base_problems_exactly(tmp_path):
    from simulation.store import RunStore

    assert loop._base_problem(tmp_path / "nope") == "no such folder"
    only_db = tmp_path / "only_db"
    only_db.mkdir()
    RunStore(only_db / "run.sqlite").close()
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    (only_cfg / "config.json").write_text("{}")
    for d in (only_db, only_cfg):
        assert loop._base_problem(d) == ("not a run folder (no run.sqlite and config.json): give a run made by "
                                         "gensim run")

    def base(name: str, agents: int, actions: int, seed: int | None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text("{}")
        s = RunStore(d / "run.sqlite")
        s.add_agents([(f"a{i}", "t", "{}", 0) for i in range(agents)])
        s.add_rows([(1, "p", "a0", "x", 1, "{}", 0, None)] * actions, ())
        s.flush()
        if seed is not None:
            s.set_meta(seed=seed)
        s.close()
        return d

    assert loop._base_problem(base("ok", 2, 3, 1)) is None
    assert loop._base_problem(base("no_actions", 2, 0, 1)) == ("an empty run (2 agents, 0 actions): it stopped before "
                                                              "recording a round")
    assert loop._base_problem(base("no_agents", 0, 3, 1)).startswith("an empty run (0 agents, 3 actions)")
    assert loop._base_problem(base("no_seed", 2, 3, None)).startswith("an empty run (2 agents, 3 actions)")


def test_the_user_may_turn_shuffling_off(tmp_path, fake_training):
    out = tmp_path / "loop"
    lines: list[str] = []
    correct(CorrectOptions("job_seeking", agents=20, out=str(out), progress=False,
                           overrides=["llm.backend=fake", "llm.shuffle_options=false"]), emit=lines.append)
    assert not [line for line in lines if "warning" in line], "the user's own choice: no warning"
    assert json.loads((out / "base" / "config.json").read_text())["simulation"]["llm"]["shuffle_options"] is False


def test_an_uninformative_judge_is_said_in_the_loop(tmp_path, monkeypatch):
    from simulation.correction.measure import Groups

    monkeypatch.setattr(loop, "rate_run", lambda run, **kw: {"judge_vs_checks": {
        "verdict": "constant", "scored": 7, "distinct_scores": [1.0], "passed": 3, "failed": 4, "auc": 0.5}})
    monkeypatch.setattr(loop, "measure", lambda run, agents, rater: None)
    lines: list[str] = []
    g = Groups(frozenset({"h"}), frozenset({"h"}), frozenset({"c"}))
    loop._measures(tmp_path / "base", g, CorrectOptions("s", judge_score=True), lines.append)
    assert lines == ["  judge of base: warning: the judge gave every one of 7 calls the score 1: it cannot tell "
                     "answers apart (uninformative)"]
    monkeypatch.setattr(loop, "rate_run", lambda run, **kw: {"judge_vs_checks": {
        "verdict": "informative", "scored": 9, "distinct_scores": [1.0, 5.0], "passed": 5, "failed": 4, "auc": 0.9}})
    lines.clear()
    loop._measures(tmp_path / "base", g, CorrectOptions("s", judge_score=True), lines.append)
    assert lines == [], "an informative judge: nothing to say"


def test_anchors_answer_with_the_base_model_s_order_averaged_preference(tmp_path):
    """A run with shuffled options: each anchored call's option probabilities are averaged over every
    order of its options (the fake backend's scorer favours the first-listed); the anchor is drawn
    from those averaged probabilities (seeded per call), and a call whose prompt states no order is
    not anchored."""
    import asyncio as aio
    import itertools

    from simulation.correction import rate_run
    from simulation.correction.datasets import anchor_candidates
    from simulation.llm.agent_llm import reordered
    from simulation.llm.scoring import FakeOptionScorer
    from tests.runs import fake_run

    run = fake_run(tmp_path / "run", "job_seeking", 24, 1, "llm.shuffle_options=true")
    rate_run(run, by="checks", progress=False)
    anchors = loop._anchor_answers(run, frozenset(), seed=3, progress=False)
    got = anchors.answers
    cands = [c for c in anchor_candidates(run) if len(c.choices) > 1]
    assert got and {c.action for c in cands} >= {"search_decision", "memory.importance"}
    scorer = FakeOptionScorer()
    checked = 0
    for c in cands:
        if len(c.choices) > 3:
            continue  # sampled orders: checked in test_exam
        every = [aio.run(scorer.option_probs(reordered(c.messages, c.choices, list(o)), list(o)))
                 for o in itertools.permutations(c.choices)]
        mean = {o: sum(p[o] for p in every) / len(every) for o in c.choices}
        # the recorded figures are rounded to 4 places: the draw is checked where rounding cannot move it
        x = random.Random(f"anchor:3:{c.id}").random()
        edges = list(itertools.accumulate(mean[o] / sum(mean.values()) for o in sorted(mean)))
        if all(abs(x - e) > 2e-3 for e in edges):
            assert got.get(c.id) == ex.sampled_option(mean, f"3:{c.id}"), c.id
            # the choice loss's target: the averaged probabilities themselves (rounded to 4 places)
            assert anchors.targets[c.id] == pytest.approx(mean, abs=1e-4), c.id
            checked += 1
    assert checked > 10
    assert loop._anchor_answers(fake_run(tmp_path / "plain", "job_seeking", 12, 1), frozenset(), 3, False) is None


def test_targeted_decisions_are_those_of_rated_rows(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"meta": m}) for m in [
        {"rater": "check:x", "action": "screen"}, {"rater": "anchor", "action": "search_decision"},
        {"rater": "judge:j", "action": "apply"}, {"rater": "anchor", "action": "screen"}]) + "\n")
    assert loop._targeted(data) == {"screen", "apply"}


def test_the_base_problem_check_only_reads(tmp_path):
    import sqlite3

    from simulation.store import RunStore

    d = tmp_path / "base"
    d.mkdir()
    (d / "config.json").write_text("{}")
    s = RunStore(d / "run.sqlite")
    s.add_agents([("a0", "t", "{}", 0)])
    s.add_rows([(1, "p", "a0", "x", 1, "{}", 0, None)], ())
    s.flush()
    s.set_meta(seed=1)
    s.close()
    with sqlite3.connect(d / "run.sqlite") as db:
        db.execute("DROP TABLE embeddings")
        db.execute("PRAGMA journal_mode=DELETE")
    assert loop._base_problem(d) is None
    with sqlite3.connect(d / "run.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "opened for writing"
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'embeddings'").fetchall()


def spy_serving(monkeypatch, client, scorer=None, adapter_scorer=None) -> list[tuple]:
    """Replace the loop's server session by ``client`` (and ``scorer``); returns the sessions' arguments
    as they come."""
    import contextlib

    from simulation.llm.scoring import FakeOptionScorer

    served: list[tuple] = []

    @contextlib.contextmanager
    def serving(where, adapter, name, progress):
        served.append((where, adapter, name, progress))
        yield loop.Session(client, scorer or FakeOptionScorer(), adapter_scorer)

    monkeypatch.setattr(loop, "_serving", serving)
    return served


def test_anchor_answers_pass_their_options_on(tmp_path, monkeypatch):
    """Held-out agents are left out, the seed picks the orders of many-option calls, and progress
    reaches the server session."""

    from simulation.correction import exam as ex
    from simulation.correction import rate_run
    from simulation.correction.datasets import anchor_candidates
    from simulation.llm.fake import FakeChatClient
    from tests.runs import fake_run

    run = fake_run(tmp_path / "run", "job_seeking", 24, 1, "llm.shuffle_options=true")
    rate_run(run, by="checks", progress=False)
    served = spy_serving(monkeypatch, FakeChatClient())
    cands = anchor_candidates(run)
    held = frozenset(sorted({c.agent_id for c in cands})[:3])
    got = loop._anchor_answers(run, held, seed=7, progress=True).answers
    assert served == [(run, None, None, True)]
    assert got and not {c.agent_id for c in cands if c.id in got} & held
    many = [ex.as_item(c) for c in cands if len(c.choices) > 3 and c.agent_id not in held]
    assert many, "memory.importance has ten options"
    import asyncio as aio

    from simulation.llm.scoring import FakeOptionScorer

    # the base's order-averaged option probabilities (the fake favours the first-listed option)
    by_hand = aio.run(ex.order_probs(many, FakeOptionScorer(), k=5, seed=7))
    for item, probs in zip(many, by_hand, strict=True):
        assert got.get(item.call_id) == ex.sampled_option(probs, f"7:{item.call_id}")
    other = loop._anchor_answers(run, held, seed=8, progress=False).answers
    assert {k: v for k, v in other.items() if k in {i.call_id for i in many}} != \
        {k: v for k, v in got.items() if k in {i.call_id for i in many}}, "the seed chooses the orders asked"
    # with training's row cap: only as many calls of a decision as give about 50 rows (ten options:
    # each call written in 6 orders, so 9 calls)
    capped = loop._anchor_answers(run, held, seed=7, progress=False, rows=10, permute=5).answers
    decision = {c.id: c.action for c in cands}
    counts = Counter(decision[k] for k in capped)
    assert 0 < counts["memory.importance"] <= 9 < Counter(decision[k] for k in got)["memory.importance"]
    assert set(capped.items()) <= set(got.items())


def test_the_exam_is_sat_with_the_adapter_deployed(tmp_path, monkeypatch, capsys):
    """_sit_exam: the fork's endpoints with the adapter deployed under its name; the base and the
    adapter both asked, with the loop's seed; a bar only with progress."""

    from simulation.correction import exam as ex
    from simulation.llm.agent_llm import options_line
    from simulation.llm.fake import FakeChatClient

    asked: list = []

    class Recording(FakeChatClient):
        async def complete(self, req):
            asked.append(req)
            return await super().complete(req)

    served = spy_serving(monkeypatch, Recording())
    opts = [str(i) for i in range(1, 8)]
    items = [ex.ExamItem(k, f"a{k}", 1, "p", "pick", [{"role": "user", "content": f"Pick {k}." + options_line(opts)}],
                         opts, "1") for k in range(3)]
    fork, adapter = tmp_path / "iter-1", tmp_path / "adapter-1"
    answers, orders, probs, aprobs = loop._sit_exam(fork, items, adapter, "adapter-1", seed=5, progress=False)
    assert served == [(fork, adapter, "adapter-1", False)]
    assert capsys.readouterr().err == "", "no bar without progress"
    both = [r for r in asked if r.tag.action == "exam.pick"]
    assert sorted((r.tag.seq, r.model or "") for r in both) == [(k, m) for k in range(3) for m in ("", "adapter-1")]
    assert {r.seed for r in asked} == {5}
    assert len(answers["base"]) == len(answers["adapter"]) == 3
    import asyncio as aio

    from simulation.llm.scoring import FakeOptionScorer
    from simulation.llm.types import LLMError

    assert probs == aio.run(ex.order_probs(items, FakeOptionScorer(), seed=5)), "the loop's seed picks the orders"
    assert aprobs == [None] * 3, "no adapter scorer in this session: no adapter probabilities"
    # with one (the deployed adapter's), its probabilities on the same calls, averaged over the same orders
    spy_serving(monkeypatch, Recording(), None, FakeOptionScorer(position_weight=3.0))
    _, _, again, aprobs = loop._sit_exam(fork, items, adapter, "adapter-1", seed=5, progress=False)
    assert again == probs and aprobs == aio.run(ex.order_probs(items, FakeOptionScorer(position_weight=3.0), seed=5))
    assert aprobs != probs
    assert orders == [] and not [r for r in asked if r.tag.action.startswith("exam.order.")], \
        "with probabilities, the base is not asked the other orders"

    class NoLogprobs(FakeOptionScorer):  # a server that is not vLLM
        async def option_probs(self, messages, options, model=None):
            raise LLMError("HTTP 400: unknown field prompt_logprobs")

    asked.clear()
    spy_serving(monkeypatch, Recording(), NoLogprobs())
    answers, orders, probs, aprobs = loop._sit_exam(fork, items, adapter, "adapter-1", seed=5, progress=False)
    assert probs == [None] * 3 and len(answers["base"]) == 3
    assert [len(o) for o in orders] == [5, 5, 5] and [list(o) for o in orders] == \
        [[", ".join(x) for x in ex.other_orders(i, 5, 5)] for i in items], "its answers under other orders stand in"
    loop._sit_exam(fork, items, adapter, "adapter-1", seed=5, progress=True)
    err = capsys.readouterr().err
    assert "exam: " in err and "/3 [" in err and "call/s" in err


def test_option_probabilities_are_cached_in_the_run_folder(tmp_path):
    """The base's order-averaged probabilities of a run's calls are kept in its folder: asked again
    with the same seed and model they are read (the scorer is not called), equal to the first; another
    seed or model is asked afresh; a line cut short by a kill is asked again."""
    import asyncio as aio

    from simulation.llm.agent_llm import options_line
    from simulation.llm.scoring import FakeOptionScorer

    class Counting(FakeOptionScorer):
        asked = 0

        async def option_probs(self, messages, options, model=None):
            Counting.asked += 1
            return await super().option_probs(messages, options, model)

    opts = ["a", "b"]
    items = [ex.ExamItem(k, f"a{k}", 1, "p", "pick", [{"role": "user", "content": f"Pick {k}." + options_line(opts)}],
                         opts, "a") for k in range(4)]
    cache = tmp_path / loop.PROBS_CACHE
    first = aio.run(loop._probs(items[:3], Counting(), 5, False, "x", cache=cache))
    assert Counting.asked == 6 and len(cache.read_text().splitlines()) == 3, "two orders of each of 3 calls"
    again = aio.run(loop._probs(items, Counting(), 5, False, "x", cache=cache))
    assert again[:3] == first and Counting.asked == 8, "only the new call is asked"
    assert again == aio.run(ex.order_probs(items, FakeOptionScorer(), seed=5))
    aio.run(loop._probs(items, Counting(), 6, False, "x", cache=cache))
    assert Counting.asked == 16, "another seed: asked afresh"
    with open(cache, "a") as f:
        f.write('{"call_id": 9, "se')
    assert aio.run(loop._probs(items, Counting(), 5, False, "x", cache=cache)) == again and Counting.asked == 16


def test_limits_of_the_options_are_allowed(tmp_path):
    """The edges of each range pass the option checks (the loop then stops at the missing --base)."""
    from dataclasses import replace

    from simulation.config import ConfigError

    base = CorrectOptions("job_seeking", out=str(tmp_path / "c"), base=str(tmp_path / "nope"))
    for ok in (dict(rounds=1), dict(max_drift=0.0), dict(max_drift=1.0), dict(permute=0), dict(iterations=1)):
        with pytest.raises(ConfigError) as e:
            correct(replace(base, **ok))
        assert [p.field for p in e.value.problems] == ["--base"], ok


def test_the_loop_s_own_folder_and_base_run(tmp_path, fake_training, monkeypatch):
    """Without --out: runs/correct-<scenario>-<time> in the working directory; the base run gets the
    loop's agents, seed and rounds; the first line names it."""
    import re

    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    correct(CorrectOptions("job_seeking", agents=20, seed=9, rounds=2, progress=False, max_drift=1.0,
                           overrides=["llm.backend=fake"]), emit=lines.append)
    (out,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"correct-job_seeking-\d{8}-\d{6}", out.name)
    assert lines[0] == f"correct: base run -> {Path('runs') / out.name / 'base'}"
    assert rows(out / "base", "SELECT COUNT(*) FROM agents") == [(20,)]
    assert rows(out / "base", "SELECT value FROM meta WHERE key = 'seed'") == [("9",)]
    assert rows(out / "base", "SELECT MAX(round) FROM actions") == [(2,)]
    nested = tmp_path / "a" / "b"
    correct(CorrectOptions("job_seeking", base=str(out / "base"), out=str(nested), progress=False, max_drift=1.0),
            emit=lambda line: None)
    assert (nested / "correction.json").is_file(), "parents are made"
    made = tmp_path / "made"
    made.mkdir()  # an existing (empty) folder is fine
    correct(CorrectOptions("job_seeking", base=str(out / "base"), out=str(made), progress=False, max_drift=1.0),
            emit=lambda line: None)
    assert (made / "correction.json").is_file()


def test_option_probabilities_are_asked_for_a_seeded_sample_of_each_decision():
    from simulation.correction import exam as ex

    items = [ex.ExamItem(k, "a", 1, "p", "big" if k % 3 else "small", [], ["x", "y"], "x") for k in range(30)]
    got = loop._prob_sample(items, seed=1, per_decision=5)
    assert got == sorted(got) and len(got) == len(set(got))
    assert Counter(items[k].decision for k in got) == {"big": 5, "small": 5}
    assert loop._prob_sample(items, seed=1, per_decision=5) == got != loop._prob_sample(items, seed=2, per_decision=5)
    small = [k for k in loop._prob_sample(items, seed=1, per_decision=10) if items[k].decision == "small"]
    assert small == [k for k in range(30) if not k % 3], "a decision with few calls: all of them"


def test_the_live_rule_hears_the_exam_on_decisions_answered_by_the_call(tmp_path, fake_training, monkeypatch):
    """The live collapse rule gets, for each decision the exam shows answering by the call
    (``exam.discerns``), the right options' shares among the fork's held-out treated calls with one
    (``exam.live_right``), where there are enough of them."""
    from simulation.correction.measure import MIN_ANSWERS, run_groups
    from tests.runs import fake_run

    base = fake_run(tmp_path / "base", agents=40, rounds=2)
    seen: dict = {}
    real_live = ex.live_right

    def live_right(run, agents, checks):
        seen["agents"] = agents
        seen["live"] = real_live(run, agents, checks)
        return seen["live"]

    def spy(after, before, preferred=None, unchecked=frozenset(), discerning=None):
        seen["discerning"] = discerning
        return []

    monkeypatch.setattr(loop.ex, "live_right", live_right)
    monkeypatch.setattr(loop.ex, "discerns", lambda fig, d: d != "screen")
    monkeypatch.setattr(loop, "collapsed", spy)
    correct(CorrectOptions("job_seeking", base=str(base), out=str(tmp_path / "c"), holdout=0.5, progress=False),
            emit=lambda line: None)
    groups, _ = run_groups(base, 0.5, 0.3)
    assert seen["agents"] == groups.holdout_treated
    enough = {d: sh for d, (sh, n) in seen["live"].items() if n >= MIN_ANSWERS}
    assert {"apply_posting", "screen"} <= set(enough) and len(enough) < len(seen["live"]), "calls enough or not"
    assert seen["discerning"] == {d: sh for d, sh in enough.items() if d != "screen"}
    assert "apply_posting" in seen["discerning"]
