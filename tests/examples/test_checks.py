"""Every shipped check, passing and failing, on actions the agents themselves record when a fake
model answers (in-process: no servers)."""

from __future__ import annotations

import json
import re

import numpy as np

from simulation.core import Action, Message
from simulation.examples.chatting import checks as chat_checks
from simulation.examples.job_seeking import checks as job_checks
from simulation.examples.job_seeking.agents import InterviewerAgent, SeekerAgent, cv_text, offer_options
from simulation.examples.job_seeking.environment import JobBoard, JobSeekingParams
from simulation.examples.job_seeking.fit import LOW_PAY, pay_words
from simulation.examples.job_seeking.population import generate_job, generate_seeker
from simulation.examples.recommendation import checks as film_checks
from simulation.examples.recommendation.environment import RecommendationParams, SiteView
from simulation.testing.steps import apply_check, run_step
from tests.conftest import EXAMPLES

JOBS_PROMPTS = EXAMPLES / "job_seeking" / "prompts"


def job(i: int, low: int) -> dict:
    return {**generate_job(0, i), "salary": f"USD {low:,} - {low + 20_000:,} annually",
            "requirements": ["2 years of experience", "Bachelor's degree or equivalent"]}


def seeker(**changes) -> dict:
    return {**generate_seeker(0, 1), **changes}


JOBS = {"interviewer-1": job(1, 30_000), "interviewer-2": job(2, 110_000)}


OFFER = dict(zip(JOBS, offer_options(len(JOBS)), strict=True))  # the option accepting each offer, listed in order


def board(applications: str = "per_posting", max_applications: int = 2, state_fit: bool = True,
          state_requirements: bool = True) -> JobBoard:
    vecs = np.eye(2, 384, dtype=np.float32)
    return JobBoard(list(JOBS), list(JOBS.values()), vecs,
                    JobSeekingParams(search_k=2, max_applications=max_applications, applications=applications,
                                     state_fit=state_fit, state_requirements=state_requirements))


def answers(apply: str | None = None, pick: str | None = None, verdict: str | None = None):
    """A fake model: searches for two jobs, then answers the apply, respond or screen call as told."""
    def respond(req) -> str:
        a = req.tag.action
        if a == "search_decision":
            return "search"
        if a == "job_count":
            return "2"
        if a == "apply_posting":  # `apply` names the postings applied to by salary: "low", "high" or "both"
            pay = re.search(r"USD ([\d,]+)", req.messages[-1]["content"])[1]
            return "apply" if apply == "both" or {"30,000": "low", "110,000": "high"}[pay] == apply else "skip"
        if a == "apply":  # `apply` names the posting by salary: "low", "high", or "low twice"
            lines = re.findall(r"^(\d+)\. .*?USD ([\d,]+)", req.messages[-1]["content"], re.M)
            low = next(n for n, pay in lines if pay == "30,000")
            high = next(n for n, pay in lines if pay == "110,000")
            return json.dumps({"apply": {"low": [int(low)], "high": [int(high)],
                                         "low twice": [int(low), int(low)]}[apply]})
        if a == "respond_offers":  # an offer's number is the option accepting it
            return f"accept offer {pick}" if pick.isdigit() else pick
        return verdict or "reject"
    return respond


async def seeker_actions(apply: str, profile: dict, applications: str = "list", max_applications: int = 2) -> list[Action]:
    ctx = await run_step(SeekerAgent, "seeker-1", profile, "search", answers(apply=apply),
                         world=board(applications, max_applications), prompts_dir=JOBS_PROMPTS)
    return ctx.actions


def decision(actions: list[Action]) -> Action:
    return next(a for a in actions if a.action == "apply_decision")


async def test_duplicate_application():
    profiles = {"seeker-1": seeker(), **JOBS}
    twice = decision(await seeker_actions("low twice", seeker()))
    assert twice.data["apply"] == [twice.data["apply"][0]] * 2 and twice.calls == (3,)
    verdict = apply_check(job_checks.duplicate_application, twice, profiles)
    assert verdict.reason.startswith("applied to posting(s)") and json.loads(verdict.rewrite)["apply"] == [twice.data["apply"][0]]
    once = decision(await seeker_actions("high", seeker()))
    assert apply_check(job_checks.duplicate_application, once, profiles) is True


async def test_low_salary_application():
    rich = seeker(desired_salary=120_000)
    profiles = {"seeker-1": rich, **JOBS}
    low = decision(await seeker_actions("low", rich))
    verdict = apply_check(job_checks.low_salary_application, low, profiles)
    assert "paying under 80% of the desired 120,000" in verdict.reason
    high = decision(await seeker_actions("high", rich))
    assert apply_check(job_checks.low_salary_application, high, profiles) is True
    # the rewrite applies to the shown posting that pays enough instead of to nothing
    assert json.loads(verdict.rewrite) == {"apply": high.data["apply"]} and high.data["apply"] != low.data["apply"]
    richer = seeker(desired_salary=200_000)  # nothing shown pays 80% of it: the rewrite applies to none
    low = decision(await seeker_actions("low", richer))
    verdict = apply_check(job_checks.low_salary_application, low, {**profiles, "seeker-1": richer})
    assert json.loads(verdict.rewrite) == {"apply": []}


def posting(actions: list[Action], pay: int) -> Action:
    """The apply_posting decision on the posting paying from ``pay``."""
    return next(a for a in actions if a.action == "apply_posting" and JOBS[a.data["job"]]["salary"].startswith(f"USD {pay:,}"))


async def test_applications_per_posting():
    """The default form: one apply/skip call per shown posting, each linked to its own action; the
    seeker applies to those answered "apply", the search's best-ranked first, up to max_applications."""
    acts = await seeker_actions("both", seeker(), "per_posting")
    decided = [a for a in acts if a.action == "apply_posting"]
    assert sorted(a.calls[0] for a in decided) == [3, 4] and {a.data["decision"] for a in decided} == {"apply"}
    assert sorted(a.data["job"] for a in acts if a.action == "apply") == sorted(JOBS) and all(a.data["sent"] for a in decided)
    capped = await seeker_actions("both", seeker(), "per_posting", max_applications=1)
    sent = [a.data["job"] for a in capped if a.action == "apply_posting" and a.data["sent"]]
    assert len(sent) == 1 and [a.data["job"] for a in capped if a.action == "apply"] == sent
    assert all(a.data["decision"] == "apply" for a in capped if a.action == "apply_posting"), "the answer as given"
    low = await seeker_actions("low", seeker(), "per_posting")
    assert [a.data["job"] for a in low if a.action == "apply"] == ["interviewer-1"]
    assert not any(a.action == "apply_decision" for a in low), "no list decision in the default form"


def test_pay_in_words_parts_where_the_salary_checks_do():
    assert [pay_words(s) for s in (0.5, LOW_PAY - 0.01, LOW_PAY, 0.99, 1.0, 1.3)] == [
        "far below the salary you want"] * 2 + ["a little below the salary you want"] * 2 + ["at least the salary you want"] * 2


def recorder(asked: list, answer):
    """``answer``, keeping each request in ``asked``."""
    return lambda req: asked.append(req) or answer(req)


def test_job_seeking_states_the_fit_by_default():
    """``state_fit`` is on unless a run turns it off (CHANGELOG 0.2.0: runs S-U learned no pay comparison
    without it), and the bundled config does not turn it off."""
    from simulation.config.loader import load_run_config

    assert JobSeekingParams().state_fit is True
    assert load_run_config(EXAMPLES / "job_seeking", params_model=JobSeekingParams).params["state_fit"] is True


async def test_posting_and_offer_prompts_state_the_fit():
    """``state_fit``: each posting's prompt states its top pay as a share of the desired salary and the
    requirements met (what applied_low_salary and skipped_fitting_posting compare), each offer its pay share;
    off, the prompts name neither."""
    fits = seeker(desired_salary=100_000, education="Master's degree in Law",
                  work_history=[{"company": "X", "position": "Y", "time": "2018-2024"}])
    novice = {**fits, "work_history": []}
    for profile, met in ((fits, 2), (novice, 1)):
        for state_fit in (True, False):
            asked: list = []
            await run_step(SeekerAgent, "seeker-1", profile, "search", recorder(asked, answers(apply="both")),
                           world=board(state_fit=state_fit), prompts_dir=JOBS_PROMPTS)
            prompts = {re.search(r"USD ([\d,]+)", r.messages[-1]["content"])[1]: r.messages[-1]["content"]
                       for r in asked if r.tag.action == "apply_posting"}
            assert sorted(prompts) == ["110,000", "30,000"]
            stated = [("It pays up to 50% of the salary you want: far below the salary you want." in prompts["30,000"]),
                      ("It pays up to 130% of the salary you want: at least the salary you want." in prompts["110,000"]),
                      all(f"You meet {met} of its 2 requirements." in p for p in prompts.values())]
            assert stated == [state_fit] * 3, (state_fit, prompts)
        asked = []
        inbox = [Message(j, "seeker-1", "offer") for j in JOBS]
        await run_step(SeekerAgent, "seeker-1", profile, "respond", recorder(asked, answers(pick="1")),
                       world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS)
        assert "Offer 2: " + JOBS["interviewer-2"]["name"] + ", USD 110,000 - 130,000 annually, up to 130% of the " \
               "salary you want: at least the salary you want" in asked[0].messages[-1]["content"]


async def test_screening_and_offer_prompts_state_the_requirements_met():
    """``state_requirements``: each application carries the requirements the seeker meets, and the hiring
    manager's screening and offer prompts state them (what screen_against_requirements and
    offer_against_requirements compare), by default; off, neither the message nor the prompts do."""
    assert JobSeekingParams().state_requirements is True
    expert = seeker(desired_salary=100_000, education="Master's degree in Law",
                    work_history=[{"company": "X", "position": "Y", "time": "2018-2024"}])
    novice = {**expert, "education": "High school diploma in Law", "work_history": []}
    for profile, met in ((expert, 2), (novice, 0)):
        for on in (True, False):
            ctx = await run_step(SeekerAgent, "seeker-1", profile, "search", answers(apply="both"),
                                 world=board(state_requirements=on), prompts_dir=JOBS_PROMPTS)
            apps = [m for m in ctx.messages if m.kind == "application"]
            assert len(apps) == 2 and all(m.data.get("fit") == ([met, 2] if on else None) for m in apps), apps
            said = f"The candidate meets {met} of the job's 2 requirements."
            asked: list = []
            screened = await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "screen",
                                      recorder(asked, answers(verdict="pass")), world=board(), inbox=apps[:1],
                                      prompts_dir=JOBS_PROMPTS)
            assert (said in asked[0].messages[-1]["content"]) is on, asked[0].messages[-1]["content"]
            asked.clear()
            answer = [Message("seeker-1", "interviewer-1", "answer", {"text": "I am keen."})]
            await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "decide",
                           recorder(asked, answers(verdict="hire")), world=board(), inbox=answer,
                           prompts_dir=JOBS_PROMPTS, state={"hires": 0, "candidates": screened.agent.state["candidates"]})
            (ask,) = [r for r in asked if r.tag.action == "offer_decision"]
            assert (said in ask.messages[-1]["content"]) is on, ask.messages[-1]["content"]


async def test_applied_low_salary():
    rich = seeker(desired_salary=120_000)
    profiles = {"seeker-1": rich, **JOBS}
    acts = await seeker_actions("both", rich, "per_posting")
    verdict = apply_check(job_checks.applied_low_salary, posting(acts, 30_000), profiles)
    assert verdict.reason == "applied to a posting paying 50,000 against a desired 120,000" and verdict.rewrite == "skip"
    assert apply_check(job_checks.applied_low_salary, posting(acts, 110_000), profiles) is True  # 130,000 >= 96,000
    skipped = await seeker_actions("high", rich, "per_posting")
    assert apply_check(job_checks.applied_low_salary, posting(skipped, 30_000), profiles) is None, "skip: not graded"


async def test_skipped_fitting_posting():
    fits = seeker(desired_salary=100_000, education="Master's degree in Law",
                  work_history=[{"company": "X", "position": "Y", "time": "2018-2024"}])
    acts = await seeker_actions("low", fits, "per_posting")  # skips the one paying 130,000
    verdict = apply_check(job_checks.skipped_fitting_posting, posting(acts, 110_000), {"seeker-1": fits, **JOBS})
    assert verdict.rewrite == "apply" and "meeting all 2 requirements" in verdict.reason, verdict
    # skipping it passes when the seeker misses a requirement, or wants more than it pays
    novice = {**fits, "work_history": []}
    acts = await seeker_actions("low", novice, "per_posting")
    assert apply_check(job_checks.skipped_fitting_posting, posting(acts, 110_000), {"seeker-1": novice, **JOBS}) is True
    greedy = {**fits, "desired_salary": 140_000}
    acts = await seeker_actions("low", greedy, "per_posting")
    assert apply_check(job_checks.skipped_fitting_posting, posting(acts, 110_000), {"seeker-1": greedy, **JOBS}) is True
    assert apply_check(job_checks.skipped_fitting_posting, posting(acts, 30_000), {"seeker-1": greedy, **JOBS}) is None


async def screen(cv: dict, verdict: str) -> Action:
    inbox = [Message("seeker-1", "interviewer-1", "application", {"cv": cv_text(cv)})]
    ctx = await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "screen",
                         answers(verdict=verdict), world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS)
    (act,) = [a for a in ctx.actions if a.action == "screen"]
    assert act.calls == (1,)
    return act


async def test_screen_against_requirements():
    novice = seeker(education="High school diploma in Law", work_history=[])
    expert = seeker(education="Master's degree in Law", work_history=[{"company": "X", "position": "Y", "time": "2018-2024"}])
    for cv, said, ok in ((novice, "pass", False), (novice, "reject", True), (expert, "reject", False),
                         (expert, "pass", True)):
        act = await screen(cv, said)
        verdict = apply_check(job_checks.screen_against_requirements, act, {"seeker-1": cv, **JOBS})
        if ok:
            assert verdict is True, (said, verdict)
        else:
            assert verdict.rewrite == ("reject" if said == "pass" else "pass"), verdict


async def respond(profile: dict, pick: str, offers: tuple[str, ...] = tuple(JOBS), asked: list | None = None) -> Action:
    """The respond_offers decision a seeker records when the fake model answers ``pick``."""
    inbox = [Message(j, "seeker-1", "offer") for j in offers]
    answer = answers(pick=pick)
    ctx = await run_step(SeekerAgent, "seeker-1", profile, "respond",
                         lambda req: (asked.append(req) if asked is not None else None) or answer(req),
                         world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS)
    (act,) = [a for a in ctx.actions if a.action == "respond_offers"]
    assert act.calls == (1,) and act.data["decision"] == (f"accept offer {pick}" if pick.isdigit() else pick)
    assert act.data["options"] == [f"accept offer {k}" for k in range(1, len(offers) + 1)]
    effect = [a.action for a in ctx.actions if a.action in ("accept", "decline_all")]
    assert effect == ["decline_all" if pick == "decline all" else "accept"]
    return act


async def test_accepted_lower_offer():
    profiles = {"seeker-1": seeker(), **JOBS}
    for pick, ok in (("1", False), ("2", True)):  # option 1 pays less than option 2
        act = await respond(seeker(), pick)
        verdict = apply_check(job_checks.accepted_lower_offer, act, profiles)
        assert verdict is True if ok else verdict.rewrite == OFFER["interviewer-2"], verdict
    assert apply_check(job_checks.accepted_lower_offer, await respond(seeker(), "decline all"), profiles) is None


def site() -> SiteView:
    films = [{"id": "film-1", "title": "A", "genres": ["Horror"], "year": 2000},
             {"id": "film-2", "title": "B", "genres": ["Comedy"], "year": 2001}]
    return SiteView(films, np.eye(2, 384, dtype=np.float32), {}, {}, RecommendationParams())


class _Env:
    world_view = site()


def test_rating_contradicts_feeling():
    felt = Action("user-1", "feel", True, {"film": "film-1", "text": "I loved it, a wonderful film."})
    low = Action("user-1", "rate", True, {"film": "film-1", "stars": 1.0})
    high = Action("user-1", "rate", True, {"film": "film-1", "stars": 4.5})
    verdict = apply_check(film_checks.rating_contradicts_feeling, low, {}, history=[felt])
    assert verdict.rewrite == "4.0" and "positive" in verdict.reason
    assert apply_check(film_checks.rating_contradicts_feeling, high, {}, history=[felt]) is True
    assert apply_check(film_checks.rating_contradicts_feeling, low, {}, history=[]) is None


def test_picked_disliked_genre():
    user = {"disliked_genre": "Horror", "favorite_genres": ["Comedy"]}
    bad = Action("user-1", "watch", True, {"film": "film-1", "shown": ["film-1", "film-2"]})
    good = Action("user-1", "watch", True, {"film": "film-2", "shown": ["film-1", "film-2"]})
    verdict = apply_check(film_checks.picked_disliked_genre, bad, {"user-1": user}, env=_Env())
    assert verdict.rewrite == "2" and "Horror" in verdict.reason
    assert apply_check(film_checks.picked_disliked_genre, good, {"user-1": user}, env=_Env()) is True


def test_chat_checks():
    trimmed = Action("member-1", "say", True, {"text": "Hello all", "trimmed": True})
    plain = Action("member-1", "say", True, {"text": "Hello all", "trimmed": False})
    earlier = Action("member-1", "say", True, {"text": "hello  ALL", "trimmed": False})
    assert apply_check(chat_checks.wrote_for_others, trimmed, {}).rewrite == "Hello all"
    assert apply_check(chat_checks.wrote_for_others, plain, {}) is True
    assert apply_check(chat_checks.repeats_itself, plain, {}, history=[earlier]).reason.startswith("repeated")
    assert apply_check(chat_checks.repeats_itself, plain, {}, history=[]) is True


async def test_offer_against_requirements():
    novice = seeker(education="High school diploma in Law", work_history=[])
    expert = seeker(education="Master's degree in Law", work_history=[{"company": "X", "position": "Y", "time": "2018-2024"}])
    inbox = [Message("seeker-1", "interviewer-1", "answer", {"text": "I am keen."})]
    for cv, said, ok in ((novice, "hire", False), (novice, "keep looking", True), (expert, "keep looking", False),
                         (expert, "hire", True)):
        ctx = await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "decide", answers(verdict=said),
                             world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS,
                             state={"hires": 0, "candidates": {"seeker-1": {"cv": cv_text(cv), "dialogue": []}}})
        (act,) = [a for a in ctx.actions if a.action == "offer_decision"]
        verdict = apply_check(job_checks.offer_against_requirements, act, {"seeker-1": cv, **JOBS})
        assert verdict is True if ok else verdict.rewrite == ("keep looking" if said == "hire" else "hire"), (said, verdict)


async def test_the_offer_check_grades_the_model_s_answer_not_the_capped_outcome():
    """Two openings, three novices hired: the third is told "no" (the job is full), and its "hire" still
    fails; a job already full asks nobody, and nothing is graded."""
    novice = seeker(education="High school diploma in Law", work_history=[])
    profiles = {f"seeker-{i}": novice for i in (1, 2, 3)}
    inbox = [Message(s, "interviewer-1", "answer", {"text": "I am keen."}) for s in profiles]
    cands = {s: {"cv": cv_text(novice), "dialogue": []} for s in profiles}
    ctx = await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "decide", answers(verdict="hire"),
                         world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS, state={"hires": 0, "candidates": cands})
    acts = [a for a in ctx.actions if a.action == "offer_decision"]
    assert [(a.data["decision"], a.data["result"], a.data.get("reason")) for a in acts] == [
        ("hire", "offer", None), ("hire", "offer", None), ("hire", "reject", "no openings")]
    for a in acts:
        verdict = apply_check(job_checks.offer_against_requirements, a, {**profiles, **JOBS})
        assert verdict.rewrite == "keep looking" and verdict.reason.startswith("hired a candidate meeting none"), a
    ctx = await run_step(InterviewerAgent, "interviewer-1", JOBS["interviewer-1"], "decide", answers(verdict="hire"),
                         world=board(), inbox=inbox, prompts_dir=JOBS_PROMPTS, state={"hires": 2, "candidates": cands})
    acts = [a for a in ctx.actions if a.action == "offer_decision"]
    assert [(a.data["decision"], a.data["result"], a.calls) for a in acts] == [(None, "reject", ())] * 3
    assert all(apply_check(job_checks.offer_against_requirements, a, {**profiles, **JOBS}) is None for a in acts)


async def test_accepted_far_below_desired():
    one = ("interviewer-1",)  # pays at most 50,000
    for desired, ok in ((120_000, False), (50_000, True)):
        profile = seeker(desired_salary=desired)
        asked: list = []
        act = await respond(profile, "1", one, asked)
        (req,) = asked
        assert "Offer 1: " + JOBS["interviewer-1"]["name"] + ", USD 30,000 - 50,000 annually" in req.messages[-1]["content"], \
            "the check grades salaries: the prompt shows them"
        assert req.choices == ["accept offer 1", "decline all"], "accepting and declining part at their first word"
        verdict = apply_check(job_checks.accepted_far_below_desired, act, {"seeker-1": profile, **JOBS})
        assert verdict is True if ok else verdict.rewrite == "decline all", verdict
    # with an offer paying enough beside it, the rewrite accepts that one, not "decline all"
    profile = seeker(desired_salary=120_000)
    act = await respond(profile, "1")
    verdict = apply_check(job_checks.accepted_far_below_desired, act, {"seeker-1": profile, **JOBS})
    assert verdict.rewrite == OFFER["interviewer-2"] and "accepted 50,000 against a desired 120,000" in verdict.reason
    assert apply_check(job_checks.accepted_far_below_desired, await respond(profile, "decline all"),
                       {"seeker-1": profile, **JOBS}) is None


async def test_declined_desired_pay():
    for desired, verdict_is in ((120_000, "failed"), (150_000, "passed"), (60_000, "failed")):
        profile = seeker(desired_salary=desired)
        profiles = {"seeker-1": profile, **JOBS}
        verdict = apply_check(job_checks.declined_desired_pay, await respond(profile, "decline all"), profiles)
        if verdict_is == "passed":  # 130,000 is 87% of 150,000: declining or accepting both pass
            assert verdict is True
            assert apply_check(job_checks.accepted_far_below_desired, await respond(profile, "2"), profiles) is True
        else:  # the best-paid offer paying the desired salary is the rewrite
            assert verdict.rewrite == OFFER["interviewer-2"] and verdict.reason == f"declined an offer of 130,000 against a desired {desired:,}"
        assert apply_check(job_checks.declined_desired_pay, await respond(profile, "2"), profiles) is None


def test_every_job_seeking_check_grades_any_answer():
    """The correction exam grades any answer to a call: every shipped check says where its action holds it."""
    assert all(c.answer is not None for c in job_checks.CHECKS + job_checks.OPTIONAL_CHECKS)
    # an offer response is graded both ways: declining is never wrong without declined_desired_pay
    assert {job_checks.accepted_far_below_desired, job_checks.declined_desired_pay} <= set(job_checks.CHECKS)
    data = {"offers": list(JOBS), "options": [OFFER[j] for j in JOBS], "decision": OFFER["interviewer-1"],
            "job": "interviewer-1"}
    assert job_checks.responded(OFFER["interviewer-2"], data) == {**data, "decision": OFFER["interviewer-2"],
                                                                  "job": "interviewer-2"}
    assert job_checks.responded("decline all", data) == {**data, "decision": "decline all", "job": None}
    # runs recorded before the options named their offer answered by number
    old = {"offers": list(JOBS), "decision": "1", "job": "interviewer-1"}
    assert job_checks.responded("2", old) == {**old, "decision": "2", "job": "interviewer-2"}


def test_picked_outside_taste():
    user = {"disliked_genre": "Drama", "favorite_genres": ["Comedy"]}
    bad = Action("user-1", "watch", True, {"film": "film-1", "shown": ["film-1", "film-2"]})
    good = Action("user-1", "watch", True, {"film": "film-2", "shown": ["film-1", "film-2"]})
    verdict = apply_check(film_checks.picked_outside_taste, bad, {"user-1": user}, env=_Env())
    assert verdict.rewrite == "2" and "favourite" in verdict.reason
    assert apply_check(film_checks.picked_outside_taste, good, {"user-1": user}, env=_Env()) is True
