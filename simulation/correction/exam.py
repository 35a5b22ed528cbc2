"""The paired held-out exam: the same recorded calls, asked of the base model and of an adapter.

The held-out agents' choice calls of the base run (every round, the same prompts and option order)
go to both models in the same batches; each answer is graded by the scenario's checks that say
where their action holds the call's answer (``@check(..., answer=...)``), offline, with the
profiles and actions the run recorded. Figures, each with a paired bootstrap interval over agents
(one agent's answers are alike, so agents are resampled, not calls):

- **balanced accuracy** of every decision where the checks name one right option: the mean over
  right options of the share of their calls answered with them, so answering one option always
  scores 50% (two right options present) whichever option it is;
- the **failure share** of every check (failed / graded) with its coverage, and of all of them;
- each model's **option shares** and **first-listed share** per decision.

The answers are written to ``exam.jsonl``, so the exam can be re-scored without a server, by
checks added later (:func:`score_exam`).
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checks import Check, CheckContext, Failed
from ..core.health import JUSTIFIED, SKEW
from ..core.records import Action
from ..llm.agent_llm import choice_max_tokens, reordered
from ..llm.agent_llm import other_orders as option_orders
from ..llm.averaging import averaged_probs, drawn_option
from ..llm.scoring import OptionScorer
from ..llm.structured import StructuredOutputError, canonical_json
from ..llm.types import CallTag, ChatClient, ChatRequest
from ..store import RunStore

BOOTSTRAP = 1000  # resamples of the held-out agents
JSON_MAX_TOKENS = 64  # a structured call's answer, as AgentLLM.json asks it by default
MODELS = ("base", "adapter")


class ExamError(RuntimeError):
    """A check could not grade an exam answer (it reads what the exam does not have)."""


@dataclass(frozen=True)
class ExamItem:
    """One recorded call of a held-out agent: its prompt, its options as shown (none for a structured
    call, whose ``json_schema`` the answer must match), and the action it produced (None when no
    examinable check covers it)."""

    call_id: int
    agent_id: str
    round: int
    phase: str
    decision: str  # the call's action name ("screen")
    messages: list[dict[str, str]]
    choices: list[str]
    recorded: str | None
    action: Action | None = None
    json_schema: dict[str, Any] | None = None


@dataclass
class Graded:
    """The exam's answers and verdicts: per item, per model, the answer and each check's verdict."""

    items: list[ExamItem]
    answers: dict[str, list[str | None]]  # model -> answer per item (None: no valid answer)
    verdicts: dict[str, list[dict[str, bool | None]]]  # model -> per item: check -> passed (None: n/a)
    right: list[str | None]  # the one right option of each item, where the checks name one
    not_examined: list[str] = field(default_factory=list)  # checks without answer=: graded live only
    base_orders: list[dict[str, str | None]] = field(default_factory=list)  # per item: order -> base's answer
    # per item: the base's probability of each option averaged over orders of the options (item 4)
    base_probs: list[dict[str, float] | None] = field(default_factory=list)
    # the adapter's, on the same calls: drift compares preferences with position averaged out in both
    adapter_probs: list[dict[str, float] | None] = field(default_factory=list)


def examinable(checks: list[Check]) -> tuple[list[Check], list[str]]:
    """The checks that can grade any answer, and the names of those that cannot."""
    return [c for c in checks if c.answer is not None], [c.name for c in checks if c.answer is None]


def exam_items(run: Path, agents: frozenset[str], checks: list[Check]) -> list[ExamItem]:
    """Every choice call of ``agents`` in the run, in call order, with its action where a check covers
    it; and every structured (JSON) call whose action an examinable check covers (job seeking's
    applications), so that every check with ``answer=`` is graded on the exam."""
    covered = {c.action for c in checks if c.answer is not None}
    store = RunStore(Path(run) / "run.sqlite", readonly=True)
    try:
        linked: dict[tuple[int, str, str, int], Action] = {}
        for r, ph, agent, name, valid, data, seq, calls in store.db.execute(
                "SELECT round, phase, agent_id, action, valid, data, seq, calls FROM actions ORDER BY id"):
            if agent not in agents or name not in covered or not calls:
                continue
            first = json.loads(calls)[0]  # the call whose answer the action holds
            linked.setdefault((r, ph, agent, first), Action(agent, name, bool(valid), json.loads(data), seq,
                                                            tuple(json.loads(calls))))
        out = []
        for cid, r, ph, agent, name, seq, prompt, completion, choices, schema, valid in store.db.execute(
                "SELECT id, round, phase, agent_id, action, seq, prompt, completion, choices, json_schema, valid "
                "FROM llm_calls WHERE choices IS NOT NULL OR json_schema IS NOT NULL ORDER BY id"):
            action = linked.get((r, ph, agent, seq))
            if agent not in agents or (choices is None and action is None):
                continue
            out.append(ExamItem(cid, agent, r, ph, name, json.loads(prompt), json.loads(choices or "[]"),
                                completion if valid else None, action,
                                json.loads(schema) if choices is None else None))
        return out
    finally:
        store.close()


class _Facts:
    """What a check reads, from the run's store: profiles, the actor's earlier actions, its step."""

    def __init__(self, run: Path):
        store = RunStore(Path(run) / "run.sqlite", readonly=True)
        try:
            self.profiles = {a: json.loads(p) for a, p in store.db.execute("SELECT agent_id, profile FROM agents")}
            self.actions = [(r, ph, Action(agent, name, bool(v), json.loads(d), seq, tuple(json.loads(c or "[]"))))
                            for r, ph, agent, name, v, d, seq, c in store.db.execute(
                                "SELECT round, phase, agent_id, action, valid, data, seq, calls FROM actions "
                                "ORDER BY id")]
        finally:
            store.close()
        self.order = {(r, ph, a.agent_id, a.seq): i for i, (r, ph, a) in enumerate(self.actions)}
        self.by_name: dict[tuple[str, str], list[int]] = defaultdict(list)  # (agent, action) -> positions
        self.steps: dict[tuple[int, str, str], list[Action]] = defaultdict(list)
        for i, (r, ph, a) in enumerate(self.actions):
            self.by_name[(a.agent_id, a.action)].append(i)
            self.steps[(r, ph, a.agent_id)].append(a)

    def context(self, item: ExamItem, action: Action) -> CheckContext:
        at = self.order.get((item.round, item.phase, action.agent_id, action.seq), 0)

        def history(agent: str, name: str) -> list[Action]:
            pos = self.by_name.get((agent, name), [])
            return [self.actions[i][2] for i in pos[:bisect.bisect_left(pos, at)]]

        return CheckContext(action, item.round, item.phase, None, self.profiles.__getitem__, history,
                            self.steps.get((item.round, item.phase, action.agent_id), []))


def grade(item: ExamItem, answer: str | None, checks: list[Check], facts: _Facts) -> dict[str, bool | None]:
    """Each check's verdict on ``answer`` given to the item's call: True passed, False failed, None
    (the rule does not apply, or no valid answer)."""
    out: dict[str, bool | None] = {}
    for c in checks:
        if item.action is None or c.action != item.action.action:
            continue
        if answer is None:
            out[c.name] = None
            continue
        act = Action(item.action.agent_id, item.action.action, True, c.with_answer(item.action.data, answer),
                     item.action.seq, item.action.calls)
        try:
            verdict = c(facts.context(item, act))
        except Exception as e:  # noqa: BLE001 - named below: the exam grades offline
            raise ExamError(f"check {c.name} failed grading call {item.call_id} ({item.decision}) offline: "
                            f"{type(e).__name__}: {e} (a check the exam uses reads only the action, profiles "
                            "and history, not c.env)") from e
        out[c.name] = None if verdict is None else not isinstance(verdict, Failed)
    return out


def right_option(item: ExamItem, checks: list[Check], facts: _Facts) -> str | None:
    """The one option every applicable check passes, where some other option fails one; else None."""
    if item.action is None:
        return None
    per = {o: grade(item, o, checks, facts) for o in item.choices}
    ok = [o for o, v in per.items() if v and all(x is not False for x in v.values()) and any(x for x in v.values())]
    failing = [o for o, v in per.items() if any(x is False for x in v.values())]
    return ok[0] if len(ok) == 1 and failing else None


def _checked_calls(run: Path, agents: frozenset[str], checks: list[Check]) -> list[tuple[ExamItem, str | None]]:
    """The checked choice calls of ``agents`` in a run, each with its right option (None: the checks name none)."""
    usable, _ = examinable(checks)
    facts = _Facts(run)
    return [(i, right_option(i, usable, facts)) for i in exam_items(run, agents, usable)
            if i.choices and i.action is not None]


def live_right(run: Path, agents: frozenset[str], checks: list[Check]) -> dict[str, tuple[dict[str, float], int]]:
    """Per checked choice decision of ``agents`` in a run (a fork): each right option's share among its
    calls with a right option, and how many those are."""
    got: dict[str, Counter[str]] = defaultdict(Counter)
    for i, r in _checked_calls(run, agents, checks):
        if r is not None:
            got[i.decision][r] += 1
    return {d: ({o: round(v / sum(c.values()), 4) for o, v in sorted(c.items())}, sum(c.values()))
            for d, c in sorted(got.items())}


def discerns(fig: dict[str, Any], decision: str, justified: float = JUSTIFIED, min_calls: int = 10) -> bool:
    """Whether the adapter gave each right option of ``decision`` where it was right on the exam, for
    ``justified`` of those calls (each right option with at least ``min_calls`` of them): it answers
    by the call, which an adapter leaning to one option does not."""
    b = fig["balanced_accuracy"].get(decision)
    if not b or len(b["right_options"]) < 2:
        return False
    counts = b.get("counts", {})
    return all(a is not None and a >= justified and counts.get(r, 0) >= min_calls for r, a in b["per_option"].items())


def unsure_items(run: Path, agents: frozenset[str], checks: list[Check]) -> list[ExamItem]:
    """The checked calls of ``agents`` whose checks name no right option (every option passes them,
    or none applies): a rating of their answer says "not wrong", not "right"."""
    return [i for i, r in _checked_calls(run, agents, checks) if r is None]


async def ask_both(items: list[ExamItem], client: ChatClient, adapter: str, seed: int = 0,
                   on_done: Callable[[], None] | None = None, concurrency: int = 64,
                   scope: frozenset[str] | None = None) -> dict[str, list[str | None]]:
    """Each item's prompt to the base model and to ``adapter``, at temperature 0, both in flight
    together (the same batches); an answer off the options, or not JSON for a structured call, is None.

    With ``scope`` (the decisions an adapter scoped by ``llm.adapter_actions`` answers), a call of any
    other decision goes to the base model alone, as in the run: its answer is the adapter side's too.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(item: ExamItem, model: str | None) -> str | None:
        tag = CallTag(item.agent_id, item.round, item.phase, f"exam.{item.decision}", item.call_id)
        if item.choices:
            req = ChatRequest(messages=item.messages, max_tokens=choice_max_tokens(item.choices),
                              temperature=0.0, choices=item.choices, seed=seed, model=model, tag=tag)
        else:
            req = ChatRequest(messages=item.messages, max_tokens=JSON_MAX_TOKENS, temperature=0.0,
                              json_schema=item.json_schema, seed=seed, model=model, tag=tag)
        async with gate:
            try:
                res = await client.complete(req)
            except StructuredOutputError:  # no valid answer; an outage is raised, never a wrong answer
                return None
        if not res.valid:
            return None
        if item.choices:
            return res.text if res.text in item.choices else None
        try:
            return canonical_json(json.loads(res.text))
        except ValueError:
            return None

    async def pair(item: ExamItem) -> tuple[str | None, str | None]:
        if scope is not None and item.decision not in scope:
            base = await one(item, None)
            got = [base, base]
        else:
            got = await asyncio.gather(one(item, None), one(item, adapter))
        if on_done is not None:
            on_done()
        return got[0], got[1]

    pairs = await asyncio.gather(*(pair(i) for i in items))
    return {"base": [p[0] for p in pairs], "adapter": [p[1] for p in pairs]}


ORDERS = 5  # orders of a many-option call sampled besides the recorded one (all orders of two or three)


def other_orders(item: ExamItem, k: int, seed: int) -> list[list[str]]:
    """Orders of the item's options other than the recorded one: all of them for two or three
    options, else a seeded sample of ``k``; none when the prompt states no order to move."""
    if not item.choices or reordered(item.messages, item.choices, item.choices) is None:
        return []
    return option_orders(item.choices, k, f"{seed}:orders:{item.call_id}")


async def ask_orders(items: list[ExamItem], client: ChatClient, k: int = ORDERS, seed: int = 0,
                     concurrency: int = 32) -> list[dict[str, str | None]]:
    """The base model's answer to each item under other orders of its options (content fixed):
    with the recorded answer, its choice with position bias averaged out."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: ExamItem, order: list[str]) -> tuple[str, str | None]:
        req = ChatRequest(messages=reordered(item.messages, item.choices, order) or item.messages,
                          max_tokens=choice_max_tokens(order), temperature=0.0, choices=order,
                          seed=seed, tag=CallTag(item.agent_id, item.round, item.phase, f"exam.order.{item.decision}",
                                                 item.call_id))
        async with gate:
            try:
                res = await client.complete(req)
            except StructuredOutputError:  # no valid answer; an outage is raised, never a wrong answer
                return ", ".join(order), None
        return ", ".join(order), res.text if res.valid and res.text in order else None

    async def all_of(item: ExamItem) -> dict[str, str | None]:
        return dict(await asyncio.gather(*(one(item, o) for o in other_orders(item, k, seed))))

    return list(await asyncio.gather(*(all_of(i) for i in items)))


async def order_probs(items: list[ExamItem], scorer: OptionScorer, k: int = ORDERS, seed: int = 0,
                      concurrency: int = 16, on_done: Callable[[], None] | None = None) -> list[dict[str, float] | None]:
    """Per item, the base model's probability of each option's content averaged over orders of the
    options: the recorded order and :func:`other_orders` (all orders of two or three options, else a
    seeded sample of ``k`` more). None where the prompt states no order to move."""
    gate = asyncio.Semaphore(concurrency)

    async def averaged(item: ExamItem) -> dict[str, float] | None:
        async with gate:
            got = await averaged_probs(scorer, item.messages, item.choices or [], None, k,
                                       f"{seed}:orders:{item.call_id}") if item.choices else None
        if on_done is not None:
            on_done()
        return {o: round(p, 4) for o, p in got.items()} if got else None

    return list(await asyncio.gather(*(averaged(i) for i in items)))


def preferred_option(probs: dict[str, float] | None, margin: float = 1e-3) -> str | None:
    """The option with the highest order-averaged probability; None when two are within ``margin``."""
    if not probs:
        return None
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    return ranked[0][0] if len(ranked) == 1 or ranked[0][1] - ranked[1][1] > margin else None


def sampled_option(probs: dict[str, float] | None, seed: int | str) -> str | None:
    """One option drawn from the order-averaged probabilities (seeded by ``seed``): an anchor keeps
    the base's preference as a distribution. The argmax sharpened a 60/40 preference into a 100/0
    rule once trained on (run B: job_count 96% "1", screen onto "pass")."""
    return drawn_option(probs, f"anchor:{seed}") if probs else None


def sampled_pick(recorded: str | None, orders: dict[str, str | None], seed: int | str) -> str | None:
    """One of the base's answers over the orders it was asked in (recorded and ``orders``), drawn
    seeded: where the server gives no probabilities, its answer shares stand in for them."""
    picks = [a for a in [recorded, *orders.values()] if a is not None]
    if not picks or not orders:
        return None
    return sampled_option({o: picks.count(o) / len(picks) for o in set(picks)}, seed)


def grade_exam(run: Path, items: list[ExamItem], answers: dict[str, list[str | None]],
               checks: list[Check], base_orders: list[dict[str, str | None]] | None = None,
               base_probs: list[dict[str, float] | None] | None = None,
               adapter_probs: list[dict[str, float] | None] | None = None) -> Graded:
    """Verdicts of every answer, and each item's right option, from the run's recorded facts."""
    usable, skipped = examinable(checks)
    facts = _Facts(run)
    verdicts = {m: [grade(i, a, usable, facts) for i, a in zip(items, answers[m], strict=True)] for m in answers}
    return Graded(items, answers, verdicts, [right_option(i, usable, facts) for i in items], skipped,
                  list(base_orders or []), list(base_probs or []), list(adapter_probs or []))


def write_exam(path: Path, graded: Graded) -> None:
    """The exam as JSONL: one line per item, with both models' answers (re-scorable offline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for k, item in enumerate(graded.items):
            row = {"call_id": item.call_id, "agent_id": item.agent_id, "round": item.round, "phase": item.phase,
                   "decision": item.decision, "choices": item.choices, "recorded": item.recorded,
                   "answers": {m: graded.answers[m][k] for m in graded.answers},
                   "base_orders": graded.base_orders[k] if graded.base_orders else {},
                   "base_probs": graded.base_probs[k] if graded.base_probs else None,
                   "adapter_probs": graded.adapter_probs[k] if graded.adapter_probs else None}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def score_exam(path: Path, run: Path, agents: frozenset[str], checks: list[Check]) -> Graded:
    """Re-grade a written exam with ``checks`` (those of today: a check added later grades it too)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    by_call = {i.call_id: i for i in exam_items(run, agents, checks)}
    missing = [r["call_id"] for r in rows if r["call_id"] not in by_call]
    if missing:
        raise ExamError(f"{path}: calls {missing[:5]} are not held-out choice calls of {run}")
    items = [by_call[r["call_id"]] for r in rows]
    answers = {m: [r["answers"][m] for r in rows] for m in rows[0]["answers"]} if rows else {m: [] for m in MODELS}
    orders = [r.get("base_orders") or {} for r in rows]
    probs = [r.get("base_probs") for r in rows]
    aprobs = [r.get("adapter_probs") for r in rows]
    return grade_exam(run, items, answers, checks, orders if any(orders) else None,
                      probs if any(p is not None for p in probs) else None,
                      aprobs if any(p is not None for p in aprobs) else None)


# ---- figures ---------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One figure for both models: the values, the adapter's 95% interval, and the interval of
    adapter - base (paired: the same resampled agents for both)."""

    base: float | None
    adapter: float | None
    lo: float | None = None
    hi: float | None = None
    diff_lo: float | None = None
    diff_hi: float | None = None
    n: int = 0


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _interval(xs: np.ndarray) -> tuple[float | None, float | None]:
    xs = xs[np.isfinite(xs)]
    if not len(xs):
        return None, None
    return _r(np.percentile(xs, 2.5)), _r(np.percentile(xs, 97.5))


def resample_weights(n_agents: int, seed: int, b: int = BOOTSTRAP) -> np.ndarray:
    """How often each agent is drawn in each of ``b`` resamples: ``(b, n_agents)`` counts of
    ``default_rng(seed).integers(0, n_agents, (b, n_agents))``."""
    idx = np.random.default_rng(seed).integers(0, n_agents, size=(b, n_agents))
    return np.stack([np.bincount(row, minlength=n_agents) for row in idx]) if n_agents else np.zeros((b, 0))


def _ratio(num: np.ndarray, den: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """sum(num)/sum(den) on the sample, and on each resample (agents weighted by ``w``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        point = num.sum() / den.sum() if den.sum() else np.nan
        boot = (w @ num) / (w @ den)
    return point, boot


def _figure(point: dict[str, float], boot: dict[str, np.ndarray], n: int) -> Figure:
    lo, hi = _interval(boot["adapter"])
    dlo, dhi = _interval(boot["adapter"] - boot["base"])
    return Figure(_r(point["base"]), _r(point["adapter"]), lo, hi, dlo, dhi, n)


def exam_figures(graded: Graded, seed: int = 0, b: int = BOOTSTRAP) -> dict[str, Any]:
    """Balanced accuracy per decision, failure share per check and overall, option and first-listed
    shares per decision; every figure with its paired bootstrap intervals (agents resampled)."""
    agents = sorted({i.agent_id for i in graded.items})
    col = {a: k for k, a in enumerate(agents)}
    w = resample_weights(len(agents), seed, b)

    def per_agent(pred: Callable[[int], float], where: Callable[[int], bool]) -> np.ndarray:
        v = np.zeros(len(agents))
        for k, item in enumerate(graded.items):
            if where(k):
                v[col[item.agent_id]] += pred(k)
        return v

    out: dict[str, Any] = {"n": len(graded.items), "agents": len(agents), "balanced_accuracy": {}, "checks": {},
                           "calls": {d: sum(1 for i in graded.items if i.decision == d)
                                     for d in sorted({i.decision for i in graded.items})},
                           "shares": {}, "first_share": {}, "invalid": {}, "not_examined": graded.not_examined,
                           "structured": {}, "ungraded": {}}
    decisions = sorted({i.decision for i in graded.items})
    # JSON answers have no options, positions or right option: their shares are reported apart from
    # the choices' (which the collapse and drift rules read); their checks count below like any other
    structured = {i.decision for i in graded.items if not i.choices}
    for d in decisions:
        for m in MODELS:
            given = [graded.answers[m][k] for k, i in enumerate(graded.items) if i.decision == d]
            valid = [a for a in given if a is not None]
            out["invalid"].setdefault(d, {})[m] = len(given) - len(valid)
            if d in structured:
                out["structured"].setdefault(d, {})[m] = {a: round(valid.count(a) / len(valid), 4)
                                                          for a in sorted(set(valid), key=lambda a: (-valid.count(a), a))}
                continue
            out["shares"].setdefault(d, {})[m] = _shares(valid)
            firsts = [graded.answers[m][k] == i.choices[0] for k, i in enumerate(graded.items)
                      if i.decision == d and graded.answers[m][k] is not None]
            out["first_share"].setdefault(d, {})[m] = round(sum(firsts) / len(firsts), 4) if firsts else None
        if d in structured:
            continue
        rights = sorted({r for i, r in zip(graded.items, graded.right, strict=True) if i.decision == d and r})
        if rights:
            point: dict[str, float] = {}
            boot: dict[str, np.ndarray] = {}
            for m in MODELS:
                accs, baccs = [], []
                for r in rights:
                    def hit(k: int, r: str = r, m: str = m) -> float:
                        return float(graded.answers[m][k] == r)

                    def has(k: int, r: str = r, d: str = d) -> bool:
                        return graded.items[k].decision == d and graded.right[k] == r

                    p, bt = _ratio(per_agent(hit, has), per_agent(lambda k: 1.0, has), w)
                    accs.append(p)
                    baccs.append(bt)
                point[m] = float(np.mean(accs))
                # a resample without one right option's calls has no balanced accuracy: it is left out of
                # the interval (averaging the options it has scored a one-option answerer 0% or 100% there)
                boot[m] = np.mean(np.stack(baccs), axis=0)
            counts = {r: sum(1 for i, x in zip(graded.items, graded.right, strict=True) if i.decision == d and x == r)
                      for r in rights}
            out["balanced_accuracy"][d] = {**asdict(_figure(point, boot, sum(counts.values()))),
                                           "right_options": rights,
                                           "per_option": {r: _r(a) for r, a in zip(rights, accs, strict=True)},
                                           "counts": counts}
            out["ungraded"][d] = _ungraded(graded, [k for k, (i, r) in enumerate(zip(graded.items, graded.right,
                                                                                      strict=True))
                                                    if i.decision == d and r is None], col, w)
        averaged = order_averaged(graded, d)
        if averaged is not None:
            out["shares"][d]["base_averaged"] = averaged
        if graded.adapter_probs and graded.base_probs:
            both = [(b, a) for i, b, a in zip(graded.items, graded.base_probs, graded.adapter_probs, strict=True)
                    if i.decision == d and b and a]
            if both:  # both models' position-free preferences on the same calls
                out["shares"][d].update(_preferences([b for b, _ in both], [a for _, a in both]))
        right = [r for i, r in zip(graded.items, graded.right, strict=True) if i.decision == d]
        out["shares"][d]["right"] = {o: round(right.count(o) / len(right), 4) for o in sorted({r for r in right if r})}
    names = sorted({c for m in MODELS for v in graded.verdicts.get(m, []) for c in v})
    tot_point: dict[str, float] = {}
    tot_boot: dict[str, np.ndarray] = {}
    tot_num = {m: np.zeros(len(agents)) for m in MODELS}
    tot_den = {m: np.zeros(len(agents)) for m in MODELS}
    for name in names:
        point, boot = {}, {}
        for m in MODELS:
            v = graded.verdicts[m]

            def failed(k: int, v: list = v, name: str = name) -> float:
                return float(v[k].get(name) is False)

            def graded_(k: int, v: list = v, name: str = name) -> bool:
                return v[k].get(name) is not None

            num, den = per_agent(failed, graded_), per_agent(lambda k: 1.0, graded_)
            tot_num[m] += num
            tot_den[m] += den
            point[m], boot[m] = _ratio(num, den, w)
        fig = _figure(point, boot, int(sum(1 for k in range(len(graded.items))
                                           if graded.verdicts["base"][k].get(name) is not None)))
        out["checks"][name] = {**asdict(fig), "graded": {m: int(sum(1 for x in graded.verdicts[m] if x.get(name)
                                                                     is not None)) for m in MODELS}}
    for m in MODELS:
        tot_point[m], tot_boot[m] = _ratio(tot_num[m], tot_den[m], w)
    total = _figure(tot_point, tot_boot, int(tot_den["base"].sum()))
    out["fail"] = asdict(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        cut = 1 - tot_boot["adapter"] / tot_boot["base"]
    out["cut"] = _r(1 - tot_point["adapter"] / tot_point["base"]) if tot_point["base"] else None
    out["cut_ci"] = list(_interval(cut))
    return out


def _ungraded(graded: Graded, ks: list[int], col: dict[str, int] | None = None,
              w: np.ndarray | None = None) -> dict[str, Any]:
    """Both models' option shares on a checked decision's calls that no check grades (``ks``): where
    the checks name no right option, the adapter has no lesson to follow but the base's; like the
    drift of a decision no example targeted, with both models' position-free preferences where the
    exam has their probabilities on the same calls (and their mean probabilities there, ``base_mean`` and
    ``adapter_mean``, which a flip of near-tied calls moves little). With the agents' columns ``col`` and resample
    weights ``w``, also the 95% interval of the drift (``drift_ci``; agents resampled), so a drift
    read off a few dozen calls says how near the limit it may be."""
    out: dict[str, Any] = {"calls": len(ks)}
    picks = {m: [graded.answers[m][k] for k in ks] for m in MODELS}
    for m in MODELS:
        out[m] = _shares(picks[m])
    if graded.base_probs and graded.adapter_probs:
        both = [k for k in ks if graded.base_probs[k] and graded.adapter_probs[k]]
        if both:  # the refusal names how many: the exam's probabilities cover a seeded part of its calls
            out["averaged_calls"] = len(both)
            # like with like, as the drift itself (_compared): the position-free picks on those calls,
            # which the interval below resamples too
            ks = both
            probs = {"base": graded.base_probs, "adapter": graded.adapter_probs}
            picks = {m: [preferred_option(probs[m][k]) for k in both] for m in MODELS}
            out.update(_preferences([probs["base"][k] for k in both], [probs["adapter"][k] for k in both]))
    if col is not None and w is not None and ks:
        out["drift_ci"] = list(_interval(_tv_resampled([col[graded.items[k].agent_id] for k in ks], picks, w)))
    return out


def _tv_resampled(agent_col: list[int], picks: dict[str, list[str | None]], w: np.ndarray) -> np.ndarray:
    """The total variation between the two models' option shares (calls without an answer left out,
    per model) on each resample of agents weighted by ``w``; NaN where a resample has no answer."""
    options = sorted({o for m in MODELS for o in picks[m] if o is not None})
    shares = {}
    for m in MODELS:
        counts = np.zeros((w.shape[1], len(options)))
        for c, o in zip(agent_col, picks[m], strict=True):
            if o is not None:
                counts[c, options.index(o)] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            got = w @ counts
            shares[m] = got / got.sum(axis=1, keepdims=True)
    return 0.5 * np.abs(shares["adapter"] - shares["base"]).sum(axis=1)


def _shares(picks: list[str | None]) -> dict[str, float]:
    """Each option's share of the calls with a pick (None, no answer or a tie, left out)."""
    got = [g for g in picks if g is not None]
    return {o: round(got.count(o) / len(got), 4) for o in sorted(set(got))}


def _argmax_shares(probs: list[dict[str, float]]) -> dict[str, float]:
    """The share of calls whose most probable option (no tie) is each option."""
    return _shares([preferred_option(p) for p in probs])


def _preferences(base: list[dict[str, float]], adapter: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Both models' position-free preferences on the same calls (their order-averaged probabilities):
    the shares of their likelier options (``*_averaged``, what the drift compares) and their mean
    probabilities (``*_mean``: a flip of near-tied calls moves the shares far and these little)."""
    return {"base_averaged": _argmax_shares(base), "adapter_averaged": _argmax_shares(adapter),
            "base_mean": _mean_probs(base), "adapter_mean": _mean_probs(adapter)}


def _mean_probs(probs: list[dict[str, float]]) -> dict[str, float]:
    """Each option's probability averaged over calls (an option a call lacks counts 0)."""
    options = sorted({o for p in probs for o in p})
    return {o: round(sum(p.get(o, 0.0) for p in probs) / len(probs), 4) for o in options}


def order_averaged(graded: Graded, decision: str) -> dict[str, float] | None:
    """The base model's option shares for ``decision`` with position bias averaged out, as a model
    answering at temperature 0 would have them: where the exam has option probabilities (item 4),
    the share of calls whose most probable option, averaged over orders, is each option (calls with
    a tie left out); else per call the share of its orders (the recorded one and the others asked)
    in which the base chose each option. None when no call of it was asked in another order.

    Greedy answers are compared with greedy answers: the mean probability itself (a call preferring
    "1" at 0.34 against three options at 0.22) is not what any model answers at temperature 0."""
    if graded.base_probs:
        shares = _argmax_shares([p for i, p in zip(graded.items, graded.base_probs, strict=True)
                                 if i.decision == decision and p])
        if shares:
            return shares
    if not graded.base_orders:
        return None
    per_call: list[dict[str, float]] = []
    for k, item in enumerate(graded.items):
        if item.decision != decision or not graded.base_orders[k]:
            continue
        picks = [a for a in [graded.answers["base"][k], *graded.base_orders[k].values()] if a is not None]
        if picks:
            per_call.append({o: picks.count(o) / len(picks) for o in set(picks)})
    if not per_call:
        return None
    options = sorted({o for p in per_call for o in p})
    return {o: round(sum(p.get(o, 0.0) for p in per_call) / len(per_call), 4) for o in options}


def summary(fig: dict[str, Any]) -> dict[str, Any]:
    """The exam as the JSON line carries it."""
    return {"n": fig["n"],
            "balanced_accuracy": {d: [v["base"], v["adapter"], v["lo"], v["hi"]]
                                  for d, v in fig["balanced_accuracy"].items()},
            "base_fail": fig["fail"]["base"], "adapter_fail": fig["fail"]["adapter"],
            "cut": fig["cut"], "cut_ci": fig["cut_ci"]}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the summed absolute differences of two option-share maps."""
    return round(0.5 * sum(abs(p.get(o, 0.0) - q.get(o, 0.0)) for o in set(p) | set(q)), 4)


def _compared(s: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """The base's and the adapter's shares to compare, like with like: position-free where the exam has
    them (``base_averaged``/``adapter_averaged``), else as answered."""
    return s.get("base_averaged") or s["base"], s.get("adapter_averaged") or s["adapter"]


def drift(fig: dict[str, Any], targeted: set[str], answered: frozenset[str] | None = None) -> dict[str, float]:
    """Per decision no training example targeted: how far the adapter's option shares moved from the
    base model's (total variation distance), on the exam's calls; from the base's order-averaged
    shares where the exam asked it other orders (its preference, not its position bias), and with
    the adapter's order-averaged shares on the same calls where the exam has its probabilities too
    (like with like: an adapter keeping the base's preference but not its position bias does not
    drift; its position bias is the first-listed share's business).

    With ``answered`` (a scoped adapter's decisions), a decision outside it is left out: the base
    model answered it on both sides, and without probabilities its raw answers would be set against
    its own order-averaged ones, its position bias read as the adapter's drift."""
    return {d: total_variation(*_compared(s))
            for d, s in sorted(fig["shares"].items())
            if d not in targeted and (answered is None or d in answered) and s["base"] and s["adapter"]}


def ungraded_drift(fig: dict[str, Any], targeted: set[str], min_calls: int = 10) -> dict[str, float]:
    """Per targeted decision with at least ``min_calls`` calls no check grades: how far the adapter's
    option shares on those calls moved from the base's (total variation distance; like with like, as
    ``drift``). Its training rows there were the base's own answers, or none: a move is a lesson
    learned elsewhere spilling over (run S2: "reject" for 69% of the CVs meeting some but not all
    requirements, which the base passes for 57%; the market's hires fell by a third)."""
    out = {}
    for d, u in sorted(fig.get("ungraded", {}).items()):
        if d in targeted and u["calls"] >= min_calls and u["base"] and u["adapter"]:
            out[d] = total_variation(*_compared(u))
    return out


def refusals(fig: dict[str, Any], targeted: set[str], max_drift: float = 0.15, skew: float = SKEW,
             justified: float = JUSTIFIED, min_calls: int = 10, answered: frozenset[str] | None = None) -> list[str]:
    """Why the exam says the adapter harms, each naming the decision or check with its figures:

    - a check's failure share got worse, the interval of the difference above zero;
    - a decision's balanced accuracy got worse, the interval of the difference below zero;
    - a decision moved above ``skew`` onto one option that is the right answer for fewer than
      ``justified`` of its calls, where the base was not already there (on that option above ``skew``
      in its recorded answers or in its position-free preference). The share counts all the decision's
      calls, those no check grades included: such a call justifies the option the base prefers there with
      position averaged out (``ungraded.<decision>.base_averaged``, the shares on the calls the exam has
      probabilities for; their anchor rows train toward it), and nothing where the exam has no
      probabilities, so "hire" for every offer was refused when hire is right for 39% of them, though it
      is right for 84% of those that have a right answer (run H; decided 2026-12-04; the base's
      preference counted since run A39, 2026-12-07, whose screening gave every graded call its right
      answer and "pass" to all the partial matches, where the base prefers "pass" for 90%). A decision no check grades has
      no right answers: there the base's position-free preference (``base_averaged``, the anchor its
      training rows were given) justifies an option instead (``job_count`` at 100% "1" where the base,
      position averaged out, answers "1" for 90%, follows the base; decided 2026-12-06);
    - a decision no training example targeted drifted more than ``max_drift`` from the base's shares
      (one the adapter answers: all, or those in ``answered``);
      where the exam has both models' probabilities, the line also says how far their means moved
      (little, against a large drift: a flip of near-tied calls, not a learned change of preference);
    - a targeted decision drifted more than ``max_drift`` on its calls that no check grades
      (``ungraded_drift``; decided 2026-12-06 on runs S and S2, whose leaning markets no rule saw); the
      line says how far the means moved there too.
    """
    out = []
    for name, c in sorted(fig["checks"].items()):
        if c["diff_lo"] is not None and c["diff_lo"] > 0:
            out.append(f"check '{name}' fails more on the exam: {c['base']:.2f} -> {c['adapter']:.2f} "
                       f"(difference interval {c['diff_lo']:+.2f} to {c['diff_hi']:+.2f})")
    for d, b in sorted(fig["balanced_accuracy"].items()):
        if b["diff_hi"] is not None and b["diff_hi"] < 0:
            out.append(f"decision '{d}' balanced accuracy fell on the exam: {b['base']:.2f} -> {b['adapter']:.2f} "
                       f"(difference interval {b['diff_lo']:+.2f} to {b['diff_hi']:+.2f})")
    for d, s in sorted(fig["shares"].items()):
        calls = fig["calls"].get(d, 0)
        if calls < min_calls or not s["adapter"]:
            continue
        opt, share = max(s["adapter"].items(), key=lambda kv: (kv[1], kv[0]))
        # the base "already there" in its recorded answers, or once its position bias is averaged out
        # (run D: job_count 92% "1" averaged, 29% recorded; an adapter at 100% "1" follows the base)
        base_top = max(s["base"].get(opt, 0.0), (s.get("base_averaged") or {}).get(opt, 0.0))
        anchored = not s["right"] and bool(s.get("base_averaged"))
        right = s["base_averaged"].get(opt, 0.0) if anchored else s["right"].get(opt, 0.0)
        checked_right = right
        u = (fig.get("ungraded") or {}).get(d) or {}
        if not anchored and u.get("base_averaged") and calls:
            # a call no check grades is justified by what the base prefers there, position averaged out
            # (what its anchor trains toward and the ungraded drift is measured from)
            right += u["calls"] / calls * u["base_averaged"].get(opt, 0.0)
        if share > skew and base_top <= skew and right < justified:
            why = (f"no check grades it, the base prefers it for {right:.0%}" if anchored else
                   f"the right answer for {checked_right:.0%}" + (f", with the base's position-free pick where no check "
                                                                 f"grades a call {right:.0%}" if right != checked_right
                                                                 else ""))
            out.append(f"decision '{d}' collapsed onto '{opt}' on the exam ({share:.0%} of {calls} calls; "
                       f"{why}; the base {base_top:.0%})")
    for d, tv in drift(fig, targeted, answered).items():
        if tv > max_drift:
            s = fig["shares"][d]
            ref, moved = _compared(s)
            out.append(f"decision '{d}', which no example targeted, drifted {tv:.2f} from the base model's shares "
                       f"(limit {max_drift:.2f}): {ref} -> {moved}" + _means_moved(s))
    for d, tv in ungraded_drift(fig, targeted, min_calls).items():
        if tv > max_drift:
            u = fig["ungraded"][d]
            on = f", position averaged out on {u['averaged_calls']}" if u.get("adapter_averaged") else ""
            out.append(f"decision '{d}' drifted {tv:.2f} from the base model's shares on its {u['calls']} calls no "
                       f"check grades{on} (limit {max_drift:.2f}; nothing asked for a change there): "
                       "{} -> {}".format(*_compared(u)) + _means_moved(u))
    return out


def _means_moved(s: dict[str, Any]) -> str:
    """How far both models' mean option probabilities moved, where the exam has them: greedy answers
    flip where a call's options are near-tied, so a large drift with means that moved little is a flip
    of near-ties, not a learned change of preference (run SR: screening's ungraded calls drifted 0.18,
    all 19 flipped calls near-tied, the means moved 0.06). Said beside the refusal, which stands."""
    if not (s.get("base_mean") and s.get("adapter_mean")):
        return ""
    return (f"; mean probabilities moved {total_variation(s['adapter_mean'], s['base_mean']):.2f} "
            f"({s['base_mean']} -> {s['adapter_mean']})")


POWER = 200  # held-out exam calls a checked decision should have before its figures decide anything


def undecided(fig: dict[str, Any], max_drift: float = 0.15, targeted: set[str] | None = None,
              min_calls: int = 10) -> list[str]:
    """Figures the exam cannot decide: a difference interval that holds zero, decisions with
    fewer than ``POWER`` calls whose right answer is known (say so rather than read noise), and a
    drift on the calls no check grades (of a ``targeted`` decision, or any with None) whose interval
    holds ``max_drift``: refused or not, the point estimate decided it."""
    out = []
    ungraded = fig.get("ungraded", {})
    for d, tv in ungraded_drift(fig, set(ungraded) if targeted is None else targeted, min_calls).items():
        lo, hi = ungraded[d].get("drift_ci") or (None, None)
        if lo is not None and lo <= max_drift <= hi:
            out.append(f"{d} drift on calls no check grades: {tv:.2f}, interval "
                       f"[{lo:.2f}, {hi:.2f}] holds the limit {max_drift:.2f}")
    for d, b in sorted(fig["balanced_accuracy"].items()):
        if b["diff_lo"] is not None and b["diff_lo"] <= 0 <= b["diff_hi"]:
            few = f" ({b['n']} calls with a right answer; about {POWER} are needed)" if b["n"] < POWER else ""
            out.append(f"{d} balanced accuracy: the difference interval [{b['diff_lo']:+.2f}, {b['diff_hi']:+.2f}] "
                       f"holds no change{few}")
        elif b["n"] < POWER:
            out.append(f"{d}: only {b['n']} calls with a right answer (about {POWER} are needed to read the interval)")
    f = fig["fail"]
    if f["diff_lo"] is not None and f["diff_lo"] <= 0 <= f["diff_hi"]:
        out.append(f"failure share: the difference interval [{f['diff_lo']:+.2f}, {f['diff_hi']:+.2f}] holds no change")
    return out


def preferred(recorded: str | None, orders: dict[str, str | None]) -> str | None:
    """The option the base chose most often over the orders it was asked in (the recorded answer
    and ``orders``' answers); None on a tie, where position alone decided it."""
    picks = [a for a in [recorded, *orders.values()] if a is not None]
    if not picks or not orders:
        return None
    counts = {o: picks.count(o) for o in set(picks)}
    top = max(counts.values())
    best = [o for o, n in counts.items() if n == top]
    return best[0] if len(best) == 1 else None


def as_item(call: Any) -> ExamItem:
    """A recorded choice call (``ratings.Call``) as an exam item, to ask it again."""
    return ExamItem(call.id, call.agent_id, call.round, call.phase, call.action, call.messages, call.choices,
                    call.completion if call.valid else None)
