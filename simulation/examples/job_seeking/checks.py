"""Job seeking's own rules, each grounded in profile fields (see ``simulation.core.checks``)."""

from __future__ import annotations

import json
from typing import Any

from simulation.core.checks import PASS, CheckContext, Failed, Verdict, check

from .fit import LOW_PAY, meets_requirements, top_salary


def applied(answer: str, data: dict[str, Any]) -> dict[str, Any]:
    """apply_decision's data had its call answered ``answer`` (JSON ``{"apply": [...]}``)."""
    try:
        picks = json.loads(answer)["apply"]
    except (ValueError, KeyError, TypeError):
        picks = None
    return {**data, "apply": picks}


@check("apply_decision", answer=applied)
def duplicate_application(c: CheckContext) -> Verdict:
    """Names one posting more than once in a single application decision."""
    picks = c.action.data.get("apply")
    if not picks:
        return None
    if len(picks) != len(set(picks)):
        return Failed(f"applied to posting(s) {sorted({p for p in picks if picks.count(p) > 1})} more than once",
                      json.dumps({"apply": sorted(set(picks))}, separators=(",", ":")))
    return PASS


@check("apply_decision", answer=applied)
def low_salary_application(c: CheckContext) -> Verdict:
    """Applies to a job whose top salary is far below the seeker's desired salary."""
    picks, shown = c.action.data.get("apply"), c.action.data.get("shown", [])
    desired = c.profile.get("desired_salary")
    if not picks or not isinstance(desired, int | float):
        return None
    pay = {i: top_salary(c.profile_of(job)) for i, job in enumerate(shown, 1)}
    floor = LOW_PAY * desired
    low = sorted(i for i in set(picks) if pay.get(i) is not None and pay[i] < floor)
    if low:
        # the underpaid picks swapped for the best-paid shown postings paying enough: dropping them alone
        # taught "apply to nothing" (run K: 74 of 260 rows {"apply":[]}, then every seeker applied to none)
        keep = [i for i in set(picks) if i not in low]
        better = sorted((i for i, p in pay.items() if p is not None and p >= floor and i not in keep),
                        key=lambda i: (-pay[i], i))
        keep = sorted(keep + better[:len(set(picks)) - len(keep)])
        return Failed(f"applied to posting(s) {low} paying under {LOW_PAY:.0%} of the desired {desired:,}",
                      json.dumps({"apply": keep}, separators=(",", ":")))
    return PASS


def posting_facts(c: CheckContext) -> tuple[int, float, tuple[int, int] | None] | None:
    """(top pay, desired salary, requirements met/known) of an apply_posting call; None where unknown."""
    job = c.profile_of(c.action.data["job"])
    pay, desired = top_salary(job), c.profile.get("desired_salary")
    if pay is None or not isinstance(desired, int | float):
        return None
    return pay, desired, meets_requirements(c.profile, job)


@check("apply_posting", answer="decision")
def applied_low_salary(c: CheckContext) -> Verdict:
    """Applies to a posting whose top salary is far below the seeker's desired salary (the posting's
    pay is in the prompt, the desired salary in the persona)."""
    facts = posting_facts(c) if c.action.data.get("decision") == "apply" else None
    if facts is None:
        return None
    pay, desired, _ = facts
    if pay < LOW_PAY * desired:
        return Failed(f"applied to a posting paying {pay:,} against a desired {desired:,}", "skip")
    return PASS


@check("apply_posting", answer="decision")
def skipped_fitting_posting(c: CheckContext) -> Verdict:
    """Skips a posting that pays the desired salary and whose every requirement the seeker meets.

    The other side of ``applied_low_salary``, as ``declined_desired_pay`` is of
    ``accepted_far_below_desired``: without it "skip" is never wrong, and a model trained on the
    corrections learns to apply to nothing. Between the two either answer passes."""
    facts = posting_facts(c) if c.action.data.get("decision") == "skip" else None
    if facts is None:
        return None
    pay, desired, fit = facts
    if pay >= desired and fit is not None and fit[0] == fit[1]:
        return Failed(f"skipped a posting paying {pay:,} (desired {desired:,}) meeting all {fit[1]} requirements",
                      "apply")
    return PASS


def judged_against_requirements(c: CheckContext, took: bool, took_what: str, refused_what: str,
                                 take: str, refuse: str) -> Verdict:
    """Taking a candidate who meets none of the job's requirements, or refusing one who meets them
    all, fails (with the call's other option as the rewrite)."""
    fit = meets_requirements(c.profile_of(c.action.data["seeker"]), c.profile)
    if fit is None:
        return None
    met, known = fit
    if took and met == 0:
        return Failed(f"{took_what} meeting none of the {known} requirements", refuse)
    if not took and met == known:
        return Failed(f"{refused_what} meeting all {known} requirements", take)
    return PASS


@check("screen", answer="result")
def screen_against_requirements(c: CheckContext) -> Verdict:
    """Passes a CV that meets none of the job's requirements, or rejects one that meets them all."""
    result = c.action.data.get("result")
    if result is None:
        return None
    return judged_against_requirements(c, result == "pass", "passed a CV", "rejected a CV", "pass", "reject")


def accept_options(data: dict[str, Any]) -> list[str]:
    """The option accepting each offer of a respond_offers action: its recorded ``options``, or in runs
    recorded before they named their offer ("accept offer 1"), the offer's bare number."""
    return data.get("options") or [str(k) for k in range(1, len(data.get("offers", [])) + 1)]


def responded(answer: str, data: dict[str, Any]) -> dict[str, Any]:
    """respond_offers' data had its call answered ``answer``: an offer's option, or "decline all"."""
    options = accept_options(data)
    job = data["offers"][options.index(answer)] if answer in options else None
    return {**data, "decision": answer, "job": job}


def offer_pay(c: CheckContext) -> dict[str, int] | None:
    """The top salary of each offer the respond call listed (None where one shows none)."""
    pay = {job: top_salary(c.profile_of(job)) for job in c.action.data.get("offers", [])}
    return None if not pay or None in pay.values() else {j: p for j, p in pay.items() if p is not None}


def best_paid(c: CheckContext, pay: dict[str, int], floor: float) -> str | None:
    """The option naming the best-paid offer paying at least ``floor``, or None."""
    enough = [j for j, p in pay.items() if p >= floor]
    if not enough:
        return None
    return accept_options(c.action.data)[c.action.data["offers"].index(max(enough, key=lambda j: pay[j]))]


@check("respond_offers", answer=responded)
def accepted_lower_offer(c: CheckContext) -> Verdict:
    """Accepts an offer paying less than another offer received at the same time."""
    job, pay = c.action.data.get("job"), offer_pay(c)
    if job is None or pay is None or len(pay) < 2:
        return None
    best = max(pay.values())
    if pay[job] < best:
        return Failed(f"accepted {pay[job]:,} over an offer of {best:,}", best_paid(c, pay, best))
    return PASS


@check("offer_decision", answer="decision")
def offer_against_requirements(c: CheckContext) -> Verdict:
    """Hires a candidate meeting none of its requirements, or keeps looking past one meeting them all.

    Grades the model's own answer (``decision``), not the outcome after the job's openings capped it:
    a "hire" turned into a rejection because the job was full is still a "hire"."""
    decision = c.action.data.get("decision")
    if decision is None:  # not asked (the job was full), or no valid answer
        return None
    return judged_against_requirements(c, decision == "hire", "hired a candidate", "kept looking past a candidate",
                                       "hire", "keep looking")


@check("respond_offers", answer=responded)
def accepted_far_below_desired(c: CheckContext) -> Verdict:
    """Accepts an offer whose top salary is far below the seeker's desired salary."""
    job, pay, desired = c.action.data.get("job"), offer_pay(c), c.profile.get("desired_salary")
    if job is None or pay is None or not isinstance(desired, int | float):
        return None
    if pay[job] < LOW_PAY * desired:
        # another offer paying enough, where there is one: "decline all" alone taught declining everything
        return Failed(f"accepted {pay[job]:,} against a desired {desired:,}",
                      best_paid(c, pay, LOW_PAY * desired) or "decline all")
    return PASS


@check("respond_offers", answer=responded)
def declined_desired_pay(c: CheckContext) -> Verdict:
    """Declines every offer, still without a job, while one pays the seeker's desired salary.

    The other side of ``accepted_far_below_desired``: between the two (80-100% of the desired
    salary) either answer passes. Without it, "decline all" is never wrong and a model trained on
    the corrections learns to decline everything (run L: 100% of held-out seekers' offers)."""
    pay, desired = offer_pay(c), c.profile.get("desired_salary")
    if c.action.data.get("decision") != "decline all" or pay is None or not isinstance(desired, int | float):
        return None
    best = best_paid(c, pay, desired)
    if best is not None:
        return Failed(f"declined an offer of {max(pay.values()):,} against a desired {desired:,}", best)
    return PASS


# Shipped: the rules that find errors in the bundled model's runs (bench/check_shares.py: 7-22% of the
# actions they cover). On that model duplicate_application never fired (0 of 95 decisions) and
# accepted_lower_offer had almost nothing to cover (seekers rarely hold two offers), so they are
# offered, not shipped: add them to a scenario's checks for models that repeat postings or get offers.
# declined_desired_pay is shipped with accepted_far_below_desired, as its other side: the bundled model
# accepts the first offer, but an adapter trained on the corrections may decline them all; the same
# holds for skipped_fitting_posting beside applied_low_salary. low_salary_application grades the
# `applications: list` form of the scenario (one JSON answer), the two posting rules its default form.
CHECKS = [applied_low_salary, skipped_fitting_posting, low_salary_application, screen_against_requirements,
          offer_against_requirements, accepted_far_below_desired, declined_desired_pay]
OPTIONAL_CHECKS = [duplicate_application, accepted_lower_offer]
