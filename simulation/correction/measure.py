"""What a correction is judged by: check failure shares and decision health for a group of agents.

Groups come from the run's seeded A/B split (``llm.routing.ab_unit``) and a seeded hold-out draw,
so the same agents are treated, held out or in the control group in every iteration of a loop.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..core.health import (  # SKEW: one option above this share is a collapsed decision
    CHOOSE_CALLS,
    JUSTIFIED,
    SKEW,
    decision_spreads,
)
from ..llm.routing import ab_unit
from ..llm.structured import canonical_json
from ..store import RunStore

MIN_ANSWERS = 10  # fewer answers in a group tell nothing about a collapse
# structured (JSON) answers, outside the choice calls' spreads: run K's adapter answered every
# application {"apply":[]}, so treated seekers stopped applying while the choice rules saw nothing
STRUCTURED_CALLS = ("SELECT id, action, agent_id, completion FROM llm_calls WHERE json_schema IS NOT NULL "
                    "AND choices IS NULL AND valid = 1 AND action NOT LIKE 'memory.%'")


def _canonical(completion: str) -> str:
    """A JSON answer written one way, so that spacing or key order does not split equal answers."""
    try:
        return canonical_json(json.loads(completion))
    except ValueError:
        return completion


def holdout_unit(seed: int, agent_id: str) -> float:
    """An agent's fixed draw for the hold-out set, independent of the A/B draw."""
    d = hashlib.blake2b(f"{seed}:holdout:{agent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(d, "big") / 2**64


@dataclass(frozen=True)
class Groups:
    """Agents whose calls are never trained on (``holdout``), those that use the adapter (``treated``) and
    the control group (base model, same round)."""

    holdout: frozenset[str]
    treated: frozenset[str]
    control: frozenset[str]

    @property
    def holdout_treated(self) -> frozenset[str]:
        return self.holdout & self.treated

    @property
    def agents(self) -> frozenset[str]:
        """Every agent of the run (treated or control)."""
        return self.treated | self.control


def split_agents(agents: list[str], seed: int, holdout: float, control: float) -> Groups:
    hold = frozenset(a for a in agents if holdout_unit(seed, a) < holdout)
    treated = frozenset(a for a in agents if ab_unit(seed, a) < 1.0 - control)
    return Groups(hold, treated, frozenset(agents) - treated)


def run_groups(run: Path, holdout: float, control: float) -> tuple[Groups, int]:
    """A run's agents split as the correction loop splits them, and the run's recorded seed (the split's)."""
    store = RunStore(Path(run) / "run.sqlite", readonly=True)
    try:
        agents = [a for (a,) in store.db.execute("SELECT agent_id FROM agents ORDER BY agent_id")]
        seed = int(store.meta()["seed"])
    finally:
        store.close()
    return split_agents(agents, seed, holdout, control), seed


@dataclass
class GroupMeasure:
    """Check failures and decision spread of one group of agents in one run."""

    checked: int = 0
    failed: int = 0
    by_check: dict[str, tuple[int, int]] = field(default_factory=dict)  # check -> (failed, checked)
    decisions: dict[str, dict[str, float]] = field(default_factory=dict)  # action -> option -> share
    answers: dict[str, int] = field(default_factory=dict)  # action -> valid answers
    first_share: dict[str, float] = field(default_factory=dict)
    judge: float | None = None
    structured: dict[str, dict[str, float]] = field(default_factory=dict)  # JSON action -> answer -> share
    structured_answers: dict[str, int] = field(default_factory=dict)  # JSON action -> valid answers
    # JSON action -> answer -> share of the checks' answers: the rewrite where a check failed, else the answer
    structured_right: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def fail(self) -> float | None:
        return round(self.failed / self.checked, 4) if self.checked else None

    def top(self, action: str) -> tuple[str, float]:
        shares = self.decisions.get(action) or {"": 0.0}
        return max(shares.items(), key=lambda kv: (kv[1], kv[0]))


def measure(run: Path, agents: frozenset[str], judge_rater: str | None = None) -> GroupMeasure:
    """The group's check failures, per-decision option shares and position bias, and mean judge score."""
    store = RunStore(Path(run) / "run.sqlite")
    try:
        out = GroupMeasure()
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for agent, name, ok in store.db.execute("SELECT agent_id, check_name, ok FROM checks"):
            if agent in agents:
                per[name][0] += not ok
                per[name][1] += 1
        out.by_check = {k: (v[0], v[1]) for k, v in sorted(per.items())}
        out.failed = sum(v[0] for v in per.values())
        out.checked = sum(v[1] for v in per.values())
        spreads = decision_spreads(store.db.execute(CHOOSE_CALLS), agents)
        out.decisions = {a: {o: round(v, 4) for o, v in s.shares().items()} for a, s in spreads.items() if s.valid}
        out.answers = {a: s.valid for a, s in spreads.items() if s.valid}
        out.first_share = {a: round(s.first / s.valid, 4) for a, s in spreads.items() if s.valid}
        given: dict[str, Counter[str]] = defaultdict(Counter)
        right: dict[str, Counter[str]] = defaultdict(Counter)
        rewrites = {cid: rw for cid, rw in store.db.execute(
            "SELECT llm_call_id, rewrite FROM check_calls WHERE ok = 0 AND rewrite IS NOT NULL AND choices IS NULL")}
        for cid, action, agent, completion in store.db.execute(STRUCTURED_CALLS):
            if agent in agents:
                given[action][_canonical(completion)] += 1
                right[action][_canonical(rewrites.get(cid, completion))] += 1
        out.structured_answers = {a: sum(c.values()) for a, c in sorted(given.items())}
        out.structured = {a: {k: round(v / out.structured_answers[a], 4) for k, v in c.most_common()}
                          for a, c in sorted(given.items())}
        out.structured_right = {a: {k: round(v / out.structured_answers[a], 4) for k, v in c.most_common()}
                                for a, c in sorted(right.items())}
        if judge_rater:
            scores = [s for agent, s in store.db.execute(
                "SELECT l.agent_id, r.score FROM ratings r JOIN llm_calls l ON l.id = r.llm_call_id "
                "WHERE r.rater LIKE ? AND r.score IS NOT NULL", (judge_rater + "%",)) if agent in agents]
            out.judge = round(sum(scores) / len(scores), 3) if scores else None
        return out
    finally:
        store.close()


def collapsed(after: GroupMeasure, before: GroupMeasure,
              preferred: dict[str, dict[str, float]] | None = None,
              unchecked: frozenset[str] | set[str] = frozenset(),
              discerning: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Decisions that moved above ``SKEW`` on one option where the base was not already there, structured
    (JSON) decisions whose one answer rose above ``SKEW`` from the base's share of that answer (unless
    the checks' answers in the base, its own with each failed one rewritten, give it for ``JUSTIFIED`` of
    the calls), and checks whose failure share rose: the reasons to refuse an adapter.

    ``preferred``: per decision, the base model's option shares with its position bias averaged out
    (the exam's ``base_averaged``). With shuffled options the base's live answers follow position, so
    an adapter that answers the option the base itself prefers above ``SKEW`` (job seeking's
    ``job_count``: "1" for 92% of calls, 32% of live answers) follows the base; it has not collapsed.
    ``unchecked``: decisions no check names a right answer for; there the base's preference justifies
    an option it gives for ``JUSTIFIED`` of the calls, as the exam's rule (``exam.refusals``).
    ``discerning``: per checked decision whose every right option the adapter gave where it was right on
    the exam (``exam.discerns``), the right options' shares among the group's live calls with one. There
    the adapter answers by the call, not by one option; if the live calls call for the option it leans to
    for ``JUSTIFIED`` of them, the market changed under it, the decision did not collapse (run S2: after
    the adapter's screening no unqualified candidate reached an offer; "hire" 94% of 36 live offers, right
    for 23 of the 23 with a right answer, and the exam's "keep looking" calls answered so for 13 of 13).
    """
    out = []
    preferred, discerning = preferred or {}, discerning or {}
    for action in after.decisions:
        opt, share = after.top(action)
        if after.answers.get(action, 0) < MIN_ANSWERS or before.answers.get(action, 0) < MIN_ANSWERS:
            continue
        if discerning.get(action, {}).get(opt, 0.0) >= JUSTIFIED:
            continue
        free = preferred.get(action, {}).get(opt, 0.0)
        if share > SKEW and before.top(action)[1] <= SKEW and free <= SKEW and not (action in unchecked
                                                                                  and free >= JUSTIFIED):
            out.append(f"decision '{action}' collapsed onto '{opt}' ({share:.0%}; base {before.top(action)[1]:.0%}"
                       + (f", {free:.0%} with position averaged out" if action in preferred else "") + ")")
    for action, shares in after.structured.items():
        if not shares or min(after.structured_answers.get(action, 0),
                             before.structured_answers.get(action, 0)) < MIN_ANSWERS:
            continue
        answer, share = max(shares.items(), key=lambda kv: (kv[1], kv[0]))
        was = before.structured.get(action, {}).get(answer, 0.0)
        right = before.structured_right.get(action, {}).get(answer, 0.0)
        if share > SKEW and was <= SKEW and right < JUSTIFIED:
            out.append(f"decision '{action}' collapsed onto the answer {answer} ({share:.0%} of "
                       f"{after.structured_answers[action]}; base {was:.0%}, the checks' answer {right:.0%})")
    for name, (f, n) in after.by_check.items():
        bf, bn = before.by_check.get(name, (0, 0))
        if n and bn and f / n > bf / bn + 0.05:
            out.append(f"check '{name}' fails more ({f}/{n} vs base {bf}/{bn})")
    return out
