"""The paired held-out exam: both models get the same calls, the checks grade every answer offline,
balanced accuracy cannot be gamed by answering one option, and the intervals are the bootstrap they
say they are (recomputed here by a plain loop over the same resamples)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from simulation.core.checks import PASS, CheckContext, Failed, check
from simulation.correction import exam as ex
from simulation.llm.types import ChatRequest, ChatResult
from simulation.store import RunStore

FITS = {"s0": "pass", "s1": "reject", "s2": "pass", "s3": None, "s4": "reject"}  # the right screening answer


@check("screen", answer="result")
def fit_rule(c: CheckContext):
    right = c.profile_of(c.action.data["seeker"])["fit"]
    if right is None or c.action.data["result"] is None:
        return None
    return PASS if c.action.data["result"] == right else Failed("wrong", right)


@check("screen")
def live_only(c: CheckContext):  # no answer=: it cannot grade another answer
    return PASS


def call_row(round_: int, agent: str, seq: int, seeker: str, choices: list[str], answer: str) -> tuple:
    prompt = [{"role": "system", "content": f"You hire for {agent}."}, {"role": "user", "content": f"CV of {seeker}"}]
    return (round_, "screen", agent, "screen", seq, f"k{agent}{round_}{seq}", json.dumps(prompt), answer,
            json.dumps(choices), None, "e", 1.0, 1, 1, 0, 1, 0, 1, None, "stop", None)


def screening_run(folder: Path, rounds: tuple[int, ...], pass_first, shuffled: bool = False) -> Path:
    """8 interviewers each screening every seeker once a round; ``pass_first(k, seq, r)`` says whether
    "pass" is listed first; the recorded answer is the first-listed option; ``shuffled`` states the
    order in the prompt, as llm.shuffle_options does."""
    from simulation.llm.agent_llm import options_line

    store = RunStore(folder / "run.sqlite")
    store.add_agents([(s, "seeker", json.dumps({"fit": f}), 0) for s, f in FITS.items()]
                     + [(f"i{k}", "interviewer", "{}", 0) for k in range(8)])
    actions, calls = [], []
    for r in rounds:
        for k in range(8):
            for seq, seeker in enumerate(FITS, start=1):
                choices = ["pass", "reject"] if pass_first(k, seq, r) else ["reject", "pass"]
                row = list(call_row(r, f"i{k}", seq, seeker, choices, choices[0]))
                if shuffled:
                    prompt = json.loads(row[6])
                    prompt[-1]["content"] += options_line(choices)
                    row[6] = json.dumps(prompt)
                calls.append(tuple(row))
                actions.append((r, "screen", f"i{k}", "screen", 1, json.dumps({"seeker": seeker, "result": choices[0]}),
                                seq - 1, json.dumps([seq])))
    store.add_rows(actions, calls)
    store.flush()
    store.close()
    return folder


@pytest.fixture()
def run(tmp_path) -> Path:
    """2 rounds, options in either order."""
    return screening_run(tmp_path, (1, 2), lambda k, seq, r: (k + seq + r) % 2)


class Answerer:
    """Base: the first-listed option; adapter: ``policy(seeker, choices)``. Records every request."""

    def __init__(self, policy):
        self.policy = policy
        self.requests: list[ChatRequest] = []

    async def complete(self, req: ChatRequest) -> ChatResult:
        self.requests.append(req)
        seeker = req.messages[-1]["content"].split()[-1]
        text = req.choices[0] if req.model is None else self.policy(seeker, req.choices)
        return ChatResult(text=text)

    async def aclose(self) -> None:
        return None


HELD = frozenset({"i0", "i1", "i2", "i3", "i5", "i6"})


async def sit(run: Path, policy) -> tuple[ex.Graded, Answerer]:
    items = ex.exam_items(run, HELD, [fit_rule, live_only])
    client = Answerer(policy)
    answers = await ex.ask_both(items, client, "adapter-1")
    return ex.grade_exam(run, items, answers, [fit_rule, live_only]), client


async def test_a_scoped_adapter_sits_its_decisions_only(run):
    """ask_both(scope=...): a decision outside the adapter's scope is asked of the base model alone and
    its answer stands for both sides (the run routes it so); those inside go to both."""
    items = ex.exam_items(run, HELD, [fit_rule, live_only])
    (decision,) = {i.decision for i in items}
    for scope, adapter_asked in ((frozenset({"other"}), False), (frozenset({decision}), True)):
        client = Answerer(lambda s, ch: ch[-1])
        answers = await ex.ask_both(items, client, "adapter-1", scope=scope)
        assert sorted({r.model or "" for r in client.requests}) == (["", "adapter-1"] if adapter_asked else [""])
        assert len(client.requests) == len(items) * (2 if adapter_asked else 1)
        assert (answers["adapter"] == answers["base"]) is (not adapter_asked)


async def test_both_models_get_the_same_calls(run):
    graded, client = await sit(run, lambda s, ch: FITS[s] or ch[-1])
    items = graded.items
    assert len(items) == len(HELD) * 2 * len(FITS) and {i.agent_id for i in items} == HELD
    by_call: dict[int, list[ChatRequest]] = {}
    for req in client.requests:
        by_call.setdefault(req.tag.seq, []).append(req)
    assert sorted(by_call) == sorted(i.call_id for i in items)
    for reqs in by_call.values():
        base, adapter = sorted(reqs, key=lambda r: r.model or "")
        assert (base.model, adapter.model) == (None, "adapter-1")
        assert base.messages == adapter.messages and base.choices == adapter.choices and base.temperature == 0
    recorded = {i.call_id: i for i in items}
    store = RunStore(run / "run.sqlite", readonly=True)
    for cid, prompt, choices in store.db.execute("SELECT id, prompt, choices FROM llm_calls"):
        if cid in recorded:  # the recorded prompt and option order, unchanged
            assert recorded[cid].messages == json.loads(prompt) and recorded[cid].choices == json.loads(choices)
    store.close()
    assert graded.not_examined == ["live_only"]
    assert graded.right == [FITS[i.messages[-1]["content"].split()[-1]] for i in items]


async def test_a_constant_answerer_scores_half(run):
    for constant in ("pass", "reject"):
        graded, _ = await sit(run, lambda s, ch, c=constant: c)
        fig = ex.exam_figures(graded, seed=3)
        ba = fig["balanced_accuracy"]["screen"]
        assert ba["adapter"] == 0.5, constant
        assert ba["lo"] == ba["hi"] == 0.5, "resamples without one right option's calls are left out"
        assert ba["base"] == 0.5, "answering by position is no better"
        assert ba["right_options"] == ["pass", "reject"]
        assert fig["first_share"]["screen"]["base"] == 1.0
        assert fig["shares"]["screen"]["adapter"] == {constant: 1.0}
    # one agent alone has calls whose right answer is "reject": most resamples have none of them, and
    # are left out of the interval rather than scoring "pass" for all as 100%
    graded, _ = await sit(run, lambda s, ch: "pass")
    lone = next(i.agent_id for i, r in zip(graded.items, graded.right, strict=True) if r == "reject")
    graded.right = [r if r != "reject" or i.agent_id == lone else None for i, r in zip(graded.items, graded.right,
                                                                                         strict=True)]
    ba = ex.exam_figures(graded, seed=3)["balanced_accuracy"]["screen"]
    assert ba["adapter"] == 0.5 and ba["lo"] == ba["hi"] == 0.5
    perfect, _ = await sit(run, lambda s, ch: FITS[s] or "pass")
    fig = ex.exam_figures(perfect, seed=3)
    assert fig["balanced_accuracy"]["screen"]["adapter"] == 1.0 and fig["fail"]["adapter"] == 0.0
    assert fig["checks"]["fit_rule"]["graded"] == {"base": 48, "adapter": 48}  # s3 has no right answer
    assert fig["cut"] == 1.0


async def test_intervals_are_a_paired_bootstrap_over_agents(run):
    # the adapter is right except for s0 and on i5's calls: figures vary between agents
    def policy(s, ch):
        return "reject" if s == "s0" else (FITS[s] or "pass")

    graded, _ = await sit(run, policy)
    graded.answers["adapter"] = [("pass" if i.agent_id == "i5" else a) for i, a in zip(graded.items, graded.answers["adapter"],
                                                                                       strict=True)]
    graded.verdicts["adapter"] = [ex.grade(i, a, [fit_rule], ex._Facts(run)) for i, a in
                                  zip(graded.items, graded.answers["adapter"], strict=True)]
    fig = ex.exam_figures(graded, seed=7, b=400)
    agents = sorted(HELD)
    idx = np.random.default_rng(7).integers(0, len(agents), size=(400, len(agents)))

    def figures(sample: list[str]) -> dict[str, float]:
        out = {}
        for m in ("base", "adapter"):
            rows = [(i, graded.answers[m][k], graded.right[k], graded.verdicts[m][k].get("fit_rule"))
                    for a in sample for k, i in enumerate(graded.items) if i.agent_id == a]
            accs = [np.mean([ans == r for _, ans, rr, _ in rows if rr == r]) if any(rr == r for _, _, rr, _ in rows)
                    else np.nan for r in ("pass", "reject")]
            out[f"ba_{m}"] = float(np.mean(accs))  # nan without one option's calls: no balanced accuracy
            graded_ = [v for *_, v in rows if v is not None]
            out[f"fail_{m}"] = sum(v is False for v in graded_) / len(graded_)
        return out

    point = figures(agents)
    boots = [figures([agents[j] for j in row]) for row in idx]
    ba = fig["balanced_accuracy"]["screen"]
    assert ba["base"] == pytest.approx(point["ba_base"], abs=1e-4)
    assert ba["adapter"] == pytest.approx(point["ba_adapter"], abs=1e-4)
    adapter_ba = np.array([b["ba_adapter"] for b in boots])
    diff_ba = adapter_ba - np.array([b["ba_base"] for b in boots])
    adapter_ba, diff_ba = adapter_ba[np.isfinite(adapter_ba)], diff_ba[np.isfinite(diff_ba)]
    assert [ba["lo"], ba["hi"]] == pytest.approx(list(np.percentile(adapter_ba, [2.5, 97.5])), abs=1e-4)
    assert [ba["diff_lo"], ba["diff_hi"]] == pytest.approx(list(np.percentile(diff_ba, [2.5, 97.5])), abs=1e-4)
    fail_a = np.array([b["fail_adapter"] for b in boots])
    fail_b = np.array([b["fail_base"] for b in boots])
    f = fig["fail"]
    assert [f["base"], f["adapter"]] == pytest.approx([point["fail_base"], point["fail_adapter"]], abs=1e-4)
    assert [f["lo"], f["hi"]] == pytest.approx(list(np.percentile(fail_a, [2.5, 97.5])), abs=1e-4)
    assert [f["diff_lo"], f["diff_hi"]] == pytest.approx(list(np.percentile(fail_a - fail_b, [2.5, 97.5])), abs=1e-4)
    assert fig["cut_ci"] == pytest.approx(list(np.percentile(1 - fail_a / fail_b, [2.5, 97.5])), abs=1e-4)
    assert ba["lo"] < ba["adapter"] < ba["hi"] + 1e-9, "agents differ: the interval has width"
    assert ex.exam_figures(graded, seed=7, b=400) == fig, "seeded"
    assert not np.array_equal(ex.resample_weights(6, 7, 400), ex.resample_weights(6, 8, 400))
    assert (ex.resample_weights(6, 7, 400).sum(axis=1) == 6).all(), "each resample draws every slot once"


async def test_a_written_exam_is_rescored_offline_by_a_later_check(run, tmp_path):
    graded, _ = await sit(run, lambda s, ch: "reject")
    path = tmp_path / "exam" / "exam.jsonl"
    ex.write_exam(path, graded)
    again = ex.score_exam(path, run, HELD, [fit_rule, live_only])
    assert again.answers == graded.answers and again.verdicts == graded.verdicts and again.right == graded.right
    assert ex.exam_figures(again, seed=1) == ex.exam_figures(graded, seed=1)

    @check("screen", answer="result")
    def never_reject(c: CheckContext):
        return Failed("rejected", "pass") if c.action.data["result"] == "reject" else PASS

    later = ex.exam_figures(ex.score_exam(path, run, HELD, [never_reject]), seed=1)
    assert later["checks"]["never_reject"]["adapter"] == 1.0  # the adapter rejected every CV
    with pytest.raises(ex.ExamError, match="not held-out choice calls"):
        ex.score_exam(path, run, frozenset({"i0"}), [fit_rule])


async def test_a_check_that_needs_the_environment_is_named(run):
    @check("screen", answer="result")
    def reads_env(c: CheckContext):
        return PASS if c.env.jobs else None

    items = ex.exam_items(run, HELD, [reads_env])
    with pytest.raises(ex.ExamError, match=r"check reads_env failed grading call \d+ \(screen\) offline: "
                                           r"AttributeError.*not c.env"):
        ex.grade_exam(run, items, {"base": [i.recorded for i in items], "adapter": [i.recorded for i in items]},
                      [reads_env])


def test_job_seeking_posting_choices_are_examined_with_right_options(tmp_path):
    """The default form: one apply/skip choice per shown posting, graded offline as live, and scored by
    balanced accuracy where its two checks name the right option (skip the underpaid, apply to the fitting)."""
    from simulation.examples.job_seeking.checks import CHECKS
    from tests.runs import fake_run

    run = fake_run(tmp_path / "run", "job_seeking", 60, 2)
    store = RunStore(run / "run.sqlite", readonly=True)
    agents = frozenset(a for (a,) in store.db.execute("SELECT agent_id FROM agents"))
    live = {(cid, name): bool(ok) for cid, name, ok in store.db.execute(
        "SELECT llm_call_id, check_name, ok FROM check_calls WHERE check_name IN "
        "('applied_low_salary', 'skipped_fitting_posting')")}
    store.close()
    items = ex.exam_items(run, agents, CHECKS)
    assert {i.decision for i in items if i.action is not None} == {"screen", "offer_decision", "respond_offers",
                                                                    "apply_posting"}
    assert all(i.choices for i in items), "no structured call left in the default form"
    posting = [i for i in items if i.decision == "apply_posting"]
    assert posting and all(sorted(i.choices) == ["apply", "skip"] and i.action.action == "apply_posting" for i in posting)
    graded = ex.grade_exam(run, items, {"base": [i.recorded for i in items], "adapter": [i.recorded for i in items]},
                           CHECKS)
    offline = {(i.call_id, name): v for i, vs in zip(items, graded.verdicts["base"], strict=True)
               for name, v in vs.items() if v is not None and name in ("applied_low_salary", "skipped_fitting_posting")}
    assert offline and offline == live and {n for _, n in live} == {"applied_low_salary", "skipped_fitting_posting"}
    rights = {r for i, r in zip(items, graded.right, strict=True) if i.decision == "apply_posting"}
    assert rights == {"apply", "skip", None}, "each option is right somewhere, and some calls have no right answer"
    fig = ex.exam_figures(graded, seed=0, b=50)
    assert fig["balanced_accuracy"]["apply_posting"]["right_options"] == ["apply", "skip"]


def test_job_seeking_checks_grade_a_fake_run_offline(tmp_path):
    """The ``applications: list`` form: one JSON answer naming the postings, examined as a structured call."""
    from simulation.examples.job_seeking.checks import CHECKS
    from tests.runs import fake_run

    run = fake_run(tmp_path / "run", "job_seeking", 40, 2, "scenario.applications=list")
    store = RunStore(run / "run.sqlite", readonly=True)
    agents = frozenset(a for (a,) in store.db.execute("SELECT agent_id FROM agents"))
    store.close()
    items = ex.exam_items(run, agents, CHECKS)
    decisions = {i.decision for i in items}
    assert {"screen", "offer_decision"} <= decisions
    linked = {i.decision for i in items if i.action is not None}
    assert linked == {"screen", "offer_decision", "respond_offers", "apply"}, "the calls an examinable check covers"
    # applications are structured calls: no options, their schema kept to ask them again
    apply = [i for i in items if i.decision == "apply"]
    assert apply and all(i.choices == [] and i.json_schema["required"] == ["apply"] and i.action.action ==
                         "apply_decision" for i in apply)
    assert all(i.choices for i in items if i.decision != "apply"), "no other structured call is examined"
    graded = ex.grade_exam(run, items, {"base": [i.recorded for i in items], "adapter": [i.recorded for i in items]},
                           CHECKS)
    assert graded.not_examined == [], "every shipped job seeking check grades any answer"
    # the recorded answers, re-graded offline, agree with the verdicts the run recorded live
    store = RunStore(run / "run.sqlite", readonly=True)
    live = {(cid, name): bool(ok) for cid, name, ok in store.db.execute(
        "SELECT llm_call_id, check_name, ok FROM check_calls")}
    store.close()
    live = {k: v for k, v in live.items() if k[0] in {i.call_id for i in items}}  # the choice calls
    offline = {(i.call_id, name): v for i, vs in zip(items, graded.verdicts["base"], strict=True) for name, v in vs.items()
               if v is not None}
    assert offline and offline == live
    assert {name for _, name in live} >= {"screen_against_requirements", "offer_against_requirements",
                                          "accepted_far_below_desired", "low_salary_application"}
    fig = ex.exam_figures(graded, seed=0, b=50)
    assert fig["fail"]["base"] == fig["fail"]["adapter"] and fig["fail"]["diff_lo"] == fig["fail"]["diff_hi"] == 0
    assert "low_salary_application" in fig["checks"] and fig["calls"]["apply"] == len(apply)
    # JSON answers' shares apart from the choices' (no position, no right option, no collapse rule of theirs)
    assert set(fig["structured"]) == {"apply"} and "apply" not in fig["shares"] and "apply" not in fig["first_share"]
    given = [i.recorded for i in apply if i.recorded is not None]
    assert fig["structured"]["apply"]["base"] == {a: round(given.count(a) / len(given), 4) for a in set(given)}
    assert ex.unsure_items(run, agents, CHECKS) and all(i.choices for i in ex.unsure_items(run, agents, CHECKS))


async def test_the_guard_refuses_harm_and_accepts_a_sharpened_decision(run):
    kept, _ = await sit(run, lambda s, ch: FITS[s] or ch[0])  # the base's own answer where no check grades
    assert ex.refusals(ex.exam_figures(kept, seed=2), targeted={"screen"}) == [], "right answers: adopted"
    b = ex.exam_figures(kept, seed=2)["balanced_accuracy"]["screen"]
    assert (b["per_option"], b["counts"]) == ({"pass": 1.0, "reject": 1.0}, {"pass": 24, "reject": 24})
    assert ex.discerns(ex.exam_figures(kept, seed=2), "screen"), "each right option given where it is right"
    assert not ex.discerns(ex.exam_figures(kept, seed=2), "screen", min_calls=25), "too few calls of one to tell"
    # the live rule's other half: the right options of a run's calls (here the base run's), s3's none
    assert ex.live_right(run, HELD, [fit_rule, live_only]) == {"screen": ({"pass": 0.5, "reject": 0.5}, 48)}
    assert ex.live_right(run, frozenset({"i0"}), [fit_rule, live_only]) == {"screen": ({"pass": 0.5, "reject": 0.5}, 8)}
    sharp, _ = await sit(run, lambda s, ch: FITS[s] or "pass")
    fig = ex.exam_figures(sharp, seed=2)
    # s3's calls, which no check grades, moved from the base's first-listed answers to "pass": a lesson
    # learned on the graded calls spilling over where nothing asked for a change
    # every agent's ungraded calls split evenly for the base: each resample of agents drifts 0.5 too
    assert fig["ungraded"]["screen"] == {"calls": 12, "base": {"pass": 0.5, "reject": 0.5}, "adapter": {"pass": 1.0},
                                         "drift_ci": [0.5, 0.5]}
    assert ex.ungraded_drift(fig, {"screen"}) == {"screen": 0.5} and ex.ungraded_drift(fig, set()) == {}
    assert ex.refusals(fig, targeted={"screen"}) == [
        "decision 'screen' drifted 0.50 from the base model's shares on its 12 calls no check grades (limit 0.15; "
        "nothing asked for a change there): {'pass': 0.5, 'reject': 0.5} -> {'pass': 1.0}"]
    assert ex.refusals(fig, targeted={"screen"}, max_drift=0.5) == [], "at the limit: allowed"
    assert ex.refusals(fig, targeted={"screen"}, min_calls=13) == [], "too few ungraded calls to tell"
    # the same change on a decision no example targeted is drift from the base model
    base, adapter = fig["shares"]["screen"]["base"], fig["shares"]["screen"]["adapter"]
    tv = ex.total_variation(adapter, base)
    assert tv == round(0.5 * sum(abs(adapter.get(o, 0) - base.get(o, 0)) for o in ("pass", "reject")), 4) > 0
    assert ex.drift(fig, targeted=set()) == {"screen": tv}
    assert ex.refusals(fig, targeted=set(), max_drift=tv + 0.01) == []
    assert ex.refusals(fig, targeted=set(), max_drift=tv - 0.01) == [
        "decision 'screen', which no example targeted, drifted 0.10 from the base model's shares (limit 0.09): "
        "{'pass': 0.5, 'reject': 0.5} -> {'pass': 0.6, 'reject': 0.4}"]
    assert ex.refusals(fig, targeted=set(), max_drift=tv) == [], "at the limit: allowed"
    # a scoped adapter never answered it: the base did on both sides, so no drift is the adapter's
    assert ex.drift(fig, targeted=set(), answered=frozenset({"offer_decision"})) == {}
    assert ex.drift(fig, targeted=set(), answered=frozenset({"screen"})) == {"screen": tv}
    assert ex.refusals(fig, targeted=set(), max_drift=tv - 0.01, answered=frozenset({"offer_decision"})) == []

    flipped, _ = await sit(run, lambda s, ch: "reject")
    fig = ex.exam_figures(flipped, seed=2)
    assert ex.refusals(fig, targeted={"screen"}) == [
        "decision 'screen' collapsed onto 'reject' on the exam (100% of 60 calls; the right answer for 40%; the "
        "base 50%)", "decision 'screen' drifted 0.50 from the base model's shares on its 12 calls no check grades "
        "(limit 0.15; nothing asked for a change there): {'pass': 0.5, 'reject': 0.5} -> {'reject': 1.0}"]
    fig["ungraded"] = {}  # below: the collapse rule alone
    b = fig["balanced_accuracy"]["screen"]
    assert b["per_option"] == {"pass": 0.0, "reject": 1.0} and not ex.discerns(fig, "screen"), "one option: no"
    # where the base, position averaged out, is already there, the adapter follows it: no collapse
    there = {**fig, "shares": {"screen": {**fig["shares"]["screen"], "base_averaged": {"reject": 0.95, "pass": 0.05}}}}
    assert ex.refusals(there, targeted={"screen"}) == []
    assert ex.refusals({**there, "shares": {"screen": {**there["shares"]["screen"], "base_averaged":
                                                        {"reject": 0.85, "pass": 0.15}}}}, targeted={"screen"})
    # a flip from one option the base was sure of to the other is a collapse too
    flip = {**fig, "shares": {"screen": {**fig["shares"]["screen"], "base": {"pass": 0.95, "reject": 0.05}}}}
    assert ex.refusals(flip, targeted={"screen"}) == [
        "decision 'screen' collapsed onto 'reject' on the exam (100% of 60 calls; the right answer for 40%; the "
        "base 5%)"]
    assert ex.refusals(fig, targeted={"screen"}, min_calls=61) == [], "too few calls to call it a collapse"
    assert ex.refusals(fig, targeted={"screen"}, justified=0.4) == [], "justified by the right answers"
    # the right share counts every call, not only the 48 with a right answer (24 of 48 would be 50%)
    assert ex.refusals(fig, targeted={"screen"}, justified=0.45), "calls without a right answer justify nothing"
    # where no check grades a call, the base's position-free pick there justifies the option (12 of 60 calls)
    fig["ungraded"] = {"screen": {"calls": 12, "base": {"reject": 1.0}, "adapter": {"reject": 1.0},
                                  "base_averaged": {"reject": 1.0}}}
    assert ex.refusals(fig, targeted={"screen"}) == [
        "decision 'screen' collapsed onto 'reject' on the exam (100% of 60 calls; the right answer for 40%, with the "
        "base's position-free pick where no check grades a call 60%; the base 50%)"]
    assert ex.refusals(fig, targeted={"screen"}, justified=0.6) == [], "40% + 12/60 of the calls justify it"
    fig["ungraded"]["screen"]["base_averaged"] = {"pass": 1.0}
    assert ex.refusals(fig, targeted={"screen"}, justified=0.45), "the base picks the other option there: no help"
    fig["ungraded"]["screen"]["base_averaged"] = {"reject": 0.5, "pass": 0.5}  # half of those 12: 40% + 10%
    collapse = [r for r in ex.refusals(fig, targeted={"screen"}, justified=0.51) if "collapsed" in r]
    assert collapse and not [r for r in ex.refusals(fig, targeted={"screen"}, justified=0.5) if "collapsed" in r]
    fig["ungraded"] = {}
    assert ex.refusals(fig, targeted={"screen"}, skew=1.0) == []
    # no check grades it: the base's position-free preference justifies an option instead of right answers
    unchecked = {**fig, "shares": {"screen": {**fig["shares"]["screen"], "right": {},
                                              "base_averaged": {"reject": 0.75, "pass": 0.25}}}}
    assert ex.refusals(unchecked, targeted={"screen"}) == [], "follows the base's own preference"
    unchecked["shares"]["screen"]["base_averaged"] = {"reject": 0.65, "pass": 0.35}
    assert ex.refusals(unchecked, targeted={"screen"}) == [
        "decision 'screen' collapsed onto 'reject' on the exam (100% of 60 calls; no check grades it, the base "
        "prefers it for 65%; the base 65%)"]

    wrong, _ = await sit(run, lambda s, ch: {"pass": "reject", "reject": "pass"}.get(FITS[s], ch[0]))
    assert ex.refusals(ex.exam_figures(wrong, seed=2), targeted={"screen"}) == [
        "check 'fit_rule' fails more on the exam: 0.50 -> 1.00 (difference interval +0.50 to +0.50)",
        "decision 'screen' balanced accuracy fell on the exam: 0.50 -> 0.00 (difference interval -0.50 to -0.50)"]


async def test_the_exam_says_what_it_cannot_decide(run):
    same, _ = await sit(run, lambda s, ch: ch[0])  # the adapter answers as the base did
    fig = ex.exam_figures(same, seed=2)
    assert ex.undecided(fig) == [
        "screen balanced accuracy: the difference interval [+0.00, +0.00] holds no change (48 calls with a right "
        "answer; about 200 are needed)",
        "failure share: the difference interval [+0.00, +0.00] holds no change"]
    sharp, _ = await sit(run, lambda s, ch: FITS[s] or "pass")
    assert ex.undecided(ex.exam_figures(sharp, seed=2)) == [
        "screen: only 48 calls with a right answer (about 200 are needed to read the interval)"]


def test_the_ungraded_drift_interval_resamples_agents():
    """Each resample's drift equals the total variation of the shares over the calls of the agents it
    drew, each as often as drawn (unanswered calls left out per model); an interval holding the
    limit is named as undecided, of a targeted decision only."""
    rng = np.random.default_rng(5)
    cols = [int(c) for c in rng.integers(0, 6, 40)]
    picks = {m: [None if rng.random() < 0.1 else str(rng.choice(["hire", "keep looking"])) for _ in cols]
             for m in ex.MODELS}
    w = ex.resample_weights(6, seed=3, b=50)
    got = ex._tv_resampled(cols, picks, w)
    for r in range(50):
        shares = {}
        for m in ex.MODELS:
            drawn = [o for c, o in zip(cols, picks[m], strict=True) for _ in range(int(w[r, c])) if o is not None]
            shares[m] = {o: drawn.count(o) / len(drawn) for o in set(drawn)} if drawn else None
        if shares["base"] is None or shares["adapter"] is None:
            assert np.isnan(got[r])
        else:
            assert got[r] == pytest.approx(ex.total_variation(shares["adapter"], shares["base"]), abs=1e-4)
    assert len(set(np.round(got[np.isfinite(got)], 6))) > 5, "the resamples differ"
    fig = {"balanced_accuracy": {}, "fail": {"diff_lo": None, "diff_hi": None},
           "ungraded": {"offer_decision": {"calls": 80, "base": {"hire": 0.67, "keep looking": 0.33},
                                           "adapter": {"hire": 0.45, "keep looking": 0.55}, "drift_ci": [0.08, 0.36]},
                        "screen": {"calls": 9, "base": {"pass": 1.0}, "adapter": {"reject": 1.0}, "drift_ci": [0.0, 1.0]}}}
    assert ex.undecided(fig, max_drift=0.15, targeted={"offer_decision", "screen"}) == [
        "offer_decision drift on calls no check grades: 0.22, interval [0.08, 0.36] holds the limit 0.15"]
    assert ex.undecided(fig, max_drift=0.4, targeted={"offer_decision"}) == []
    assert ex.undecided(fig, max_drift=0.15, targeted={"screen"}) == [], "not targeted; too few calls"


@pytest.fixture()
def shuffled_run(tmp_path) -> Path:
    """1 round, each prompt stating its option order, "pass" listed first in most."""
    return screening_run(tmp_path, (1,), lambda k, seq, r: (k + seq) % 4, shuffled=True)


class Ordered(Answerer):
    """The base answers by position, except that it rejects s0 in any order; it reads the order the
    prompt states, so a reordered prompt moves its answer."""

    async def complete(self, req: ChatRequest) -> ChatResult:
        self.requests.append(req)
        seeker = req.messages[-1]["content"].split("CV of ")[1].split()[0]
        stated = req.messages[-1]["content"].rsplit("Options, in this order: ", 1)[1].rstrip(".").split(", ")
        assert stated == req.choices, "the prompt states the order the request lists"
        if req.model is not None:
            return ChatResult(text=self.policy(seeker, req.choices))
        return ChatResult(text="reject" if seeker == "s0" else req.choices[0])


async def test_order_averaged_preferences_equal_every_order_by_hand(shuffled_run):
    import itertools

    items = ex.exam_items(shuffled_run, HELD, [fit_rule])
    client = Ordered(lambda s, ch: "pass")
    answers, orders = await asyncio.gather(ex.ask_both(items, client, "adapter-1"), ex.ask_orders(items, client))
    for item, got in zip(items, orders, strict=True):  # every other order of two options: one
        assert list(got) == [", ".join(reversed(item.choices))]
    graded = ex.grade_exam(shuffled_run, items, answers, [fit_rule], orders)
    fig = ex.exam_figures(graded, seed=1)
    # by hand: each call under every order of its options, the base's pick counted per order
    per_call = []
    for item in items:
        seeker = item.messages[-1]["content"].split("CV of ")[1].split()[0]
        picks = ["reject" if seeker == "s0" else list(o)[0] for o in itertools.permutations(item.choices)]
        per_call.append({o: picks.count(o) / len(picks) for o in ("pass", "reject")})
    by_hand = {o: round(sum(p[o] for p in per_call) / len(per_call), 4) for o in ("pass", "reject")}
    assert fig["shares"]["screen"]["base_averaged"] == by_hand == {"pass": 0.4, "reject": 0.6}
    assert fig["shares"]["screen"]["base"]["pass"] >= 0.55, "the recorded orders alone carry the position bias"
    # drift is measured from the order-averaged shares: the adapter's 100% pass is 0.6 away
    assert ex.drift(fig, targeted=set()) == {"screen": 0.6}
    path = shuffled_run / "exam.jsonl"
    ex.write_exam(path, graded)
    again = ex.score_exam(path, shuffled_run, HELD, [fit_rule])
    assert again.base_orders == orders and ex.exam_figures(again, seed=1) == fig
    assert ex.other_orders(items[0], 5, 0) == [list(reversed(items[0].choices))]


def test_other_orders_of_many_options_are_a_seeded_sample():
    from simulation.llm.agent_llm import options_line

    opts = [str(i) for i in range(1, 11)]
    item = ex.ExamItem(1, "a", 1, "p", "memory.importance", [{"role": "user", "content": "How important?"
                                                               + options_line(opts)}], opts, "10")
    got = ex.other_orders(item, 5, seed=3)
    assert len(got) == 5 and all(sorted(o) == sorted(opts) and o != opts for o in got)
    assert len({tuple(o) for o in got}) == 5 and ex.other_orders(item, 5, seed=3) == got
    assert ex.other_orders(item, 5, seed=4) != got
    plain = ex.ExamItem(2, "a", 1, "p", "x", [{"role": "user", "content": "Pick."}], ["a", "b"], "a")
    assert ex.other_orders(plain, 5, 0) == [], "a prompt stating no order has none to move"


def test_exam_items_hold_the_recorded_call_and_its_action(run):
    store = RunStore(run / "run.sqlite")
    with store.db:  # one invalid call, and one action no examinable check covers
        store.db.execute("UPDATE llm_calls SET valid = 0 WHERE agent_id = 'i0' AND round = 1 AND seq = 2")
        store.db.execute("UPDATE actions SET action = 'other' WHERE agent_id = 'i1' AND round = 2 AND seq = 0")
    store.close()
    items = ex.exam_items(run, frozenset({"i0", "i1"}), [fit_rule, live_only])
    assert [(i.agent_id, i.round, i.call_id) for i in items] == sorted(
        ((i.agent_id, i.round, i.call_id) for i in items), key=lambda x: x[2]), "in call order"
    assert {i.agent_id for i in items} == {"i0", "i1"} and len(items) == 2 * 2 * len(FITS)
    first = items[0]
    assert (first.agent_id, first.round, first.phase, first.decision) == ("i0", 1, "screen", "screen")
    assert first.messages[-1]["content"] == "CV of s0" and first.choices in (["pass", "reject"], ["reject", "pass"])
    assert first.recorded == first.choices[0]
    assert first.action.action == "screen" and first.action.data == {"seeker": "s0", "result": first.recorded}
    assert first.action.seq == 0 and first.action.calls == (1,)
    bad = next(i for i in items if i.agent_id == "i0" and i.round == 1 and i.messages[-1]["content"] == "CV of s1")
    assert bad.recorded is None, "an invalid call has no recorded answer"
    other = next(i for i in items if i.agent_id == "i1" and i.round == 2 and i.messages[-1]["content"] == "CV of s0")
    assert other.action is None, "no examinable check covers it"
    assert ex.exam_items(run, frozenset({"i0"}), [live_only]) and all(
        i.action is None for i in ex.exam_items(run, frozenset({"i0"}), [live_only]))


def test_checks_see_the_recorded_facts_offline(run):
    """A check in the exam reads the actor's profile, any profile, its earlier actions (before this
    one only) and its step, as it did live; it has no environment."""
    facts = ex._Facts(run)
    items = ex.exam_items(run, frozenset({"i2"}), [fit_rule])
    item = next(i for i in items if i.round == 2 and i.messages[-1]["content"] == "CV of s2")
    ctx = facts.context(item, item.action)
    assert (ctx.round, ctx.phase, ctx.env) == (2, "screen", None)
    assert ctx.profile == {} and ctx.profile_of("s0") == {"fit": "pass"}
    assert [(a.data["seeker"]) for a in ctx.history("screen")] == [*FITS, "s0", "s1"], "round 1, then earlier in round 2"
    assert ctx.history("other") == []
    assert [a.data["seeker"] for a in ctx.step_actions] == list(FITS), "its own step: round 2's five screenings"
    assert all(a.agent_id == "i2" for a in ctx.step_actions + ctx.history("screen"))
    other = facts.context(item, ex.exam_items(run, frozenset({"i3"}), [fit_rule])[0].action)
    assert [a.agent_id for a in other.step_actions] == ["i3"] * len(FITS)


async def test_requests_and_failed_answers(run):
    from simulation.llm.structured import StructuredOutputError
    from simulation.llm.types import LLMError

    items = ex.exam_items(run, frozenset({"i0"}), [fit_rule])[:4]

    class Flaky(Answerer):
        async def complete(self, req):
            self.requests.append(req)
            if req.tag.seq == items[0].call_id:
                raise StructuredOutputError("off the options after the repairs")
            if req.tag.seq == items[1].call_id:
                return ChatResult(text="maybe")  # off the options
            if req.tag.seq == items[2].call_id:
                return ChatResult(text=req.choices[0], valid=False)
            return ChatResult(text=req.choices[-1])

    client = Flaky(None)
    done: list[int] = []
    got = await ex.ask_both(items, client, "adapter-9", seed=4, on_done=lambda: done.append(1))
    assert got == {"base": [None, None, None, items[3].choices[-1]], "adapter": [None, None, None, items[3].choices[-1]]}
    assert len(done) == 4
    for req in client.requests:
        assert req.max_tokens == max(4, max(len(c) for c in req.choices) // 2 + 4) == 7
        assert (req.temperature, req.seed, req.tag.action, req.tag.phase) == (0.0, 4, "exam.screen", "screen")
        assert req.tag.agent_id == "i0" and req.tag.round == 1
    client.requests.clear()
    shuffled = [ex.ExamItem(i.call_id, i.agent_id, i.round, i.phase, i.decision,
                            [*i.messages[:-1], {**i.messages[-1], "content": i.messages[-1]["content"]
                                                + "\nOptions, in this order: " + ", ".join(i.choices) + "."}],
                            i.choices, i.recorded, i.action) for i in items]
    orders = await ex.ask_orders(shuffled, client, seed=4)
    assert orders[0] == {", ".join(reversed(items[0].choices)): None}, "no valid answer is no answer"
    assert orders[1] == {", ".join(reversed(items[1].choices)): None}, "an answer off the options is none"
    assert orders[2] == {", ".join(reversed(items[2].choices)): None}, "an invalid answer is none"
    assert orders[3] == {", ".join(reversed(items[3].choices)): items[3].choices[0]}
    for req in client.requests:
        assert req.model is None and req.tag.action == "exam.order.screen" and req.seed == 4 and req.temperature == 0
        assert req.messages[-1]["content"].endswith("Options, in this order: " + ", ".join(req.choices) + ".")

    class Down(Answerer):
        async def complete(self, req):
            raise LLMError("endpoint down after its retries")

    # an outage stops the exam: it is not a wrong answer
    with pytest.raises(LLMError, match="endpoint down"):
        await ex.ask_both(items, Down(None), "adapter-9")
    with pytest.raises(LLMError, match="endpoint down"):
        await ex.ask_orders(shuffled, Down(None))


async def test_the_written_exam_row(run, tmp_path):
    graded, _ = await sit(run, lambda s, ch: "reject")
    graded.base_orders = [{"x": "pass"}] * len(graded.items)
    path = tmp_path / "deep" / "exam.jsonl"
    ex.write_exam(path, graded)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    item = graded.items[0]
    assert rows[0] == {"call_id": item.call_id, "agent_id": item.agent_id, "round": item.round, "phase": item.phase,
                       "decision": "screen", "choices": item.choices, "recorded": item.recorded,
                       "answers": {"base": graded.answers["base"][0], "adapter": "reject"}, "base_orders": {"x": "pass"},
                       "base_probs": None, "adapter_probs": None}
    assert len(rows) == len(graded.items)
    graded.base_orders = []
    ex.write_exam(path, graded)
    assert json.loads(path.read_text().splitlines()[0])["base_orders"] == {}


async def test_figures_hold_counts_and_shares(run):
    graded, _ = await sit(run, lambda s, ch: "reject" if s != "s4" else None)
    graded.answers["adapter"] = [None if i.messages[-1]["content"].endswith("s4") else a
                                 for i, a in zip(graded.items, graded.answers["adapter"], strict=True)]
    fig = ex.exam_figures(graded, seed=1, b=50)
    assert (fig["n"], fig["agents"], fig["calls"]) == (60, 6, {"screen": 60})
    assert fig["invalid"]["screen"] == {"base": 0, "adapter": 12}
    assert fig["shares"]["screen"]["adapter"] == {"reject": 1.0}
    assert fig["shares"]["screen"]["right"] == {"pass": 0.4, "reject": 0.4}
    c = fig["checks"]["fit_rule"]
    assert c["graded"] == {"base": 48, "adapter": 36} and c["n"] == 48
    assert c["adapter"] == round(24 / 36, 4), "s0 and s2 (pass) answered reject; s4's answer was invalid"
    assert fig["fail"]["n"] == 48 and fig["not_examined"] == ["live_only"]
    assert ex.summary(fig) == {"n": 60, "balanced_accuracy": {"screen": [fig["balanced_accuracy"]["screen"][k] for k in
                                                                        ("base", "adapter", "lo", "hi")]},
                               "base_fail": fig["fail"]["base"], "adapter_fail": fig["fail"]["adapter"],
                               "cut": fig["cut"], "cut_ci": fig["cut_ci"]}


def test_unsure_items_are_the_checked_calls_without_a_right_option(run):
    # s3's fit is unknown: fit_rule does not apply, so no option is right; the others have one
    got = ex.unsure_items(run, frozenset({"i0", "i4"}), [fit_rule, live_only])
    assert {(i.agent_id, i.round) for i in got} == {(a, r) for a in ("i0", "i4") for r in (1, 2)}
    assert {i.messages[-1]["content"] for i in got} == {"CV of s3"}
    assert all(i.action is not None for i in got)
    assert ex.unsure_items(run, frozenset({"i0"}), [live_only]) == [], "only calls an examinable check covers"


async def test_order_averaged_probabilities_are_recorded_and_replace_the_answers(shuffled_run):
    """Item 4: each call's option probabilities averaged over every order of its options (two here)
    equal a direct computation; they are written with the exam, and the base's averaged shares (the
    drift's reference) come from them."""
    from simulation.llm.agent_llm import reordered
    from simulation.llm.scoring import FakeOptionScorer

    items = ex.exam_items(shuffled_run, HELD, [fit_rule])
    scorer = FakeOptionScorer(position_weight=1.5)
    probs = await ex.order_probs(items, scorer, seed=2)
    for item, got in zip(items, probs, strict=True):
        each = [await scorer.option_probs(reordered(item.messages, item.choices, o), o)
                for o in (["pass", "reject"], ["reject", "pass"])]
        assert got == {o: round((each[0][o] + each[1][o]) / 2, 4) for o in item.choices}
    client = Ordered(lambda s, ch: "pass")
    answers = await ex.ask_both(items, client, "adapter-1")
    graded = ex.grade_exam(shuffled_run, items, answers, [fit_rule], None, probs)
    fig = ex.exam_figures(graded, seed=1)
    # the shares a position-free base would answer at temperature 0: each call's likelier option
    picks = [max(p, key=p.get) for p in probs]
    shares = {o: round(picks.count(o) / len(picks), 4) for o in sorted(set(picks))}
    assert len(shares) == 2, "the fake prefers pass for some interviewers and reject for others"
    assert fig["shares"]["screen"]["base_averaged"] == shares
    assert ex.drift(fig, targeted=set()) == {"screen": ex.total_variation({"pass": 1.0}, shares)}
    path = shuffled_run / "exam.jsonl"
    ex.write_exam(path, graded)
    again = ex.score_exam(path, shuffled_run, HELD, [fit_rule])
    assert again.base_probs == probs and ex.exam_figures(again, seed=1) == fig
    # like with like: with the adapter's averaged probabilities on the same calls, an adapter keeping the
    # base's preference does not drift, whatever it answers in the recorded order; one moving it does
    kept = ex.grade_exam(shuffled_run, items, answers, [fit_rule], None, probs, probs)
    kfig = ex.exam_figures(kept, seed=1)
    assert kfig["shares"]["screen"]["adapter_averaged"] == shares and ex.drift(kfig, set()) == {"screen": 0.0}
    moved = [{"pass": 0.9, "reject": 0.1} for _ in probs]
    mfig = ex.exam_figures(ex.grade_exam(shuffled_run, items, answers, [fit_rule], None, probs, moved), seed=1)
    assert ex.drift(mfig, set()) == {"screen": ex.total_variation({"pass": 1.0}, shares)}
    # beside the greedy shares, the mean probabilities: a flip of near-ties moves those little
    mean = {o: round(sum(p[o] for p in probs) / len(probs), 4) for o in ("pass", "reject")}
    assert kfig["shares"]["screen"]["base_mean"] == kfig["shares"]["screen"]["adapter_mean"] == mean
    assert mfig["shares"]["screen"]["adapter_mean"] == {"pass": 0.9, "reject": 0.1}
    # the calls no check grades (s3's) are compared like with like too, and the refusal says on how many
    u = mfig["ungraded"]["screen"]
    s3 = [p for i, p in zip(items, probs, strict=True) if "CV of s3" in i.messages[-1]["content"]]
    assert u["calls"] == u["averaged_calls"] == len(s3) == 6 and u["adapter_averaged"] == {"pass": 1.0}
    tv = ex.total_variation({"pass": 1.0}, u["base_averaged"])
    assert ex.ungraded_drift(mfig, {"screen"}, min_calls=6) == {"screen": tv} and tv > 0
    line = ex.refusals(mfig, {"screen"}, max_drift=0.01, min_calls=6)[-1]
    assert (f"decision 'screen' drifted {tv:.2f} from the base model's shares on its 6 calls no check grades, "
            "position averaged out on 6 (limit 0.01") in line
    # and how far the means moved on those calls, so a flip of near-ties reads as one
    s3_mean = {o: round(sum(p[o] for p in s3) / len(s3), 4) for o in ("pass", "reject")}
    assert u["base_mean"] == s3_mean and u["adapter_mean"] == {"pass": 0.9, "reject": 0.1}
    s3_moved = ex.total_variation({"pass": 0.9, "reject": 0.1}, s3_mean)
    assert line.endswith(f"; mean probabilities moved {s3_moved:.2f} ({s3_mean} -> {{'pass': 0.9, 'reject': 0.1}})")
    said = ex.refusals(mfig, set(), max_drift=0.01)
    moved_by = ex.total_variation({"pass": 0.9, "reject": 0.1}, mean)
    assert any(f"mean probabilities moved {moved_by:.2f} ({mean} -> {{'pass': 0.9, 'reject': 0.1}})" in r
               for r in said), said
    ex.write_exam(path, kept)
    assert ex.score_exam(path, shuffled_run, HELD, [fit_rule]).adapter_probs == probs, "recorded, re-scorable"
    # a prompt stating no order has nothing to average over
    unstated = ex.ExamItem(1, "a", 1, "p", "screen", [{"role": "user", "content": "Hire?"}], ["pass", "reject"], "pass")
    assert await ex.order_probs([unstated], scorer) == [None]
    assert ex.preferred_option({"a": 0.6, "b": 0.4}) == "a" and ex.preferred_option({"a": 0.5, "b": 0.5}) is None
    assert ex.preferred_option(None) is None


def test_sampled_anchor_keeps_the_preference_as_shares():
    """An anchor drawn from the order-averaged preference: the same seed draws the same option, and
    over many calls the drawn shares follow the probabilities (the argmax would give 100% "a")."""
    probs = {"a": 0.7, "b": 0.3}
    assert ex.sampled_option(probs, "7:1") == ex.sampled_option(probs, "7:1")
    drawn = Counter(ex.sampled_option(probs, f"7:{k}") for k in range(4000))
    assert abs(drawn["a"] / 4000 - 0.7) < 0.03 and set(drawn) == {"a", "b"}
    assert ex.sampled_option({"a": 1.0, "b": 0.0}, 3) == "a"
    assert ex.sampled_option(None, 1) is None and ex.sampled_option({"a": 0.0}, 1) is None
    # without probabilities: the answers over orders (recorded included) stand in for them
    picks = Counter(ex.sampled_pick("a", {"o1": "b", "o2": "b", "o3": "a"}, k) for k in range(3000))
    assert abs(picks["b"] / 3000 - 0.5) < 0.04
    assert ex.sampled_pick("a", {}, 1) is None


def test_structured_calls_are_asked_with_their_schema_and_graded(tmp_path):
    """Applications (JSON answers) are asked again with the schema they were asked with; an answer is
    compared as parsed JSON, one that does not parse is no answer, and the check grades both models."""
    from simulation.examples.job_seeking.checks import CHECKS
    from tests.runs import fake_run

    run = fake_run(tmp_path / "run", "job_seeking", 40, 2, "scenario.applications=list")
    store = RunStore(run / "run.sqlite", readonly=True)
    agents = frozenset(a for (a,) in store.db.execute("SELECT agent_id FROM agents"))
    store.close()
    items = [i for i in ex.exam_items(run, agents, CHECKS) if i.decision == "apply"]

    class Json:
        requests: list[ChatRequest] = []

        async def complete(self, req: ChatRequest) -> ChatResult:
            self.requests.append(req)
            return ChatResult(text='{ "apply" : [1] }' if req.model is None else "not json")

        async def aclose(self) -> None:
            return None

    client = Json()
    answers = asyncio.run(ex.ask_both(items, client, "adapter-1"))
    assert answers == {"base": ['{"apply":[1]}'] * len(items), "adapter": [None] * len(items)}
    schemas = {i.call_id: i.json_schema for i in items}
    assert sorted(r.tag.seq for r in client.requests) == sorted([*schemas, *schemas]), "each call, once per model"
    assert all(r.choices is None and r.json_schema == schemas[r.tag.seq] and r.max_tokens == ex.JSON_MAX_TOKENS
               for r in client.requests)
    graded = ex.grade_exam(run, items, answers, CHECKS)
    base = [v.get("low_salary_application") for v in graded.verdicts["base"]]
    assert any(x is not None for x in base) and all(v == {"low_salary_application": None}
                                                     for v in graded.verdicts["adapter"])
    fig = ex.exam_figures(graded, seed=0, b=20)
    assert fig["structured"]["apply"] == {"base": {'{"apply":[1]}': 1.0}, "adapter": {}}
    assert fig["invalid"]["apply"] == {"base": 0, "adapter": len(items)}
    assert fig["checks"]["low_salary_application"]["graded"] == {"base": sum(x is not None for x in base), "adapter": 0}


def test_run_a39_s_screening_gave_every_graded_call_its_right_answer_and_is_no_collapse():
    """Run A39's exam (2026-12-07): screening 91% "pass" over 193 calls; the right answer for 39% of them
    ("reject" for 9%), every graded one answered right; the 101 partial matches no check grades all
    "pass", where the base prefers "pass" for 90% (54 of them with probabilities). Refused before the
    base's pick counted; 39% + 101/193 of 90% = 86% justified."""
    fig = {"checks": {}, "balanced_accuracy": {}, "calls": {"screen": 193},
           "shares": {"screen": {"base": {"pass": 0.658, "reject": 0.342}, "adapter": {"pass": 0.9119, "reject": 0.0881},
                                 "base_averaged": {"pass": 0.7634, "reject": 0.2366},
                                 "right": {"pass": 0.3886, "reject": 0.0881}}},
           "ungraded": {"screen": {"calls": 101, "base": {"pass": 0.6436, "reject": 0.3564}, "adapter": {"pass": 1.0},
                                   "base_averaged": {"pass": 0.8958, "reject": 0.1042}, "adapter_averaged": {"pass": 1.0},
                                   "averaged_calls": 54}}}
    assert ex.ungraded_drift(fig, {"screen"}) == {"screen": 0.1042}, "within the limit: the base's lean kept"
    assert ex.refusals(fig, targeted={"screen"}) == []
    assert ex.refusals(fig, targeted={"screen"}, justified=0.86) == [
        "decision 'screen' collapsed onto 'pass' on the exam (91% of 193 calls; the right answer for 39%, with the "
        "base's position-free pick where no check grades a call 86%; the base 76%)"]
