"""Scenario checks: a scenario's own rules over each recorded action, run on the driver as phases end.

A check is a plain function of a :class:`CheckContext` that returns :data:`PASS`, ``None`` (the
rule does not apply to this action) or a :class:`Failed` with a one-line reason and, optionally,
the answer a consistent agent would have given (a rewrite: for a choice, one of the call's own
options). Declare checks with :func:`check` and list them in ``ScenarioSpec(checks=[...])``::

    @check("apply_decision")
    def duplicate_application(c: CheckContext) -> Verdict:
        picks = c.action.data["apply"] or []
        return Failed("applied twice to one posting") if len(picks) != len(set(picks)) else PASS
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import Action


@dataclass(frozen=True, slots=True)
class Failed:
    """The action breaks the rule: why (one line), and what a consistent agent would have answered."""

    reason: str
    rewrite: str | None = None


PASS = True
Verdict = Failed | bool | None  # PASS, a Failed, or None when the rule does not apply


@dataclass
class CheckContext:
    """What a check sees.

    The action, the actor's profile, any agent's profile, the environment, the actor's other
    actions in the same step, and its earlier actions in the run.
    """

    action: Action
    round: int
    phase: str
    env: Any
    _profile_of: Callable[[str], dict[str, Any]]
    _history: Callable[[str, str], list[Action]]
    step_actions: list[Action] = field(default_factory=list)

    @property
    def profile(self) -> dict[str, Any]:
        """The acting agent's profile."""
        return self._profile_of(self.action.agent_id)

    def profile_of(self, agent_id: str) -> dict[str, Any]:
        """Another agent's profile (an interviewer's is its job ad)."""
        return self._profile_of(agent_id)

    def history(self, action: str) -> list[Action]:
        """The actor's earlier actions named ``action`` (earlier rounds, and earlier phases of this one)."""
        return self._history(self.action.agent_id, action)


AnswerMap = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Check:
    """A named rule over the actions called ``action``.

    ``answer`` says where the action holds the answer of its (first) LLM call: a data field that
    records the answer as given (``"decision"``), or a function ``(answer, data) -> data`` that puts
    another answer in its place. With it, any answer to the call can be graded (every option of a
    choice, or another model's answer, as the correction exam does); without it, only the recorded one.
    """

    name: str
    action: str
    fn: Callable[[CheckContext], Verdict]
    answer: str | AnswerMap | None = None

    def __call__(self, ctx: CheckContext) -> Verdict:
        """Apply the rule to one action."""
        return self.fn(ctx)

    def with_answer(self, data: dict[str, Any], answer: str) -> dict[str, Any]:
        """The action's data as it would be had its call answered ``answer`` (needs ``answer=``)."""
        if self.answer is None:
            raise ValueError(f"check {self.name} does not say where its action holds the call's answer (answer=)")
        if isinstance(self.answer, str):
            return {**data, self.answer: answer}
        return self.answer(answer, dict(data))


def check(action: str, name: str | None = None,
          answer: str | AnswerMap | None = None) -> Callable[[Callable[[CheckContext], Verdict]], Check]:
    """Decorator: the function becomes a :class:`Check` over actions named ``action``.

    ``answer`` says where the action holds its call's answer (see :class:`Check`).
    """

    def wrap(fn: Callable[[CheckContext], Verdict]) -> Check:
        return Check(name or fn.__name__, action, fn, answer)

    return wrap


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check applied to one action, as stored in the ``checks`` table."""

    check: str
    action: Action
    ok: bool
    reason: str = ""
    rewrite: str | None = None


def run_checks(checks: list[Check], actions: list[Action], round_: int, phase: str, env: Any,
               profile_of: Callable[[str], dict[str, Any]],
               history: Callable[[str, str], list[Action]]) -> list[CheckResult]:
    """Apply every check to the phase's actions it covers. A check that raises is a scenario bug."""
    by_action: dict[str, list[Check]] = {}
    for c in checks:
        by_action.setdefault(c.action, []).append(c)
    if not by_action:
        return []
    per_agent: dict[str, list[Action]] = {}
    for a in actions:
        per_agent.setdefault(a.agent_id, []).append(a)
    out = []
    for a in actions:
        for c in by_action.get(a.action, ()):
            verdict = c(CheckContext(a, round_, phase, env, profile_of, history, per_agent[a.agent_id]))
            if verdict is None:
                continue
            if isinstance(verdict, Failed):
                out.append(CheckResult(c.name, a, False, verdict.reason, verdict.rewrite))
            elif verdict is True:
                out.append(CheckResult(c.name, a, True))
            else:
                raise TypeError(f"check {c.name} returned {verdict!r}: return PASS, Failed(...) or None")
    return out
