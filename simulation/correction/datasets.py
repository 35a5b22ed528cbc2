"""Training datasets from a run's ratings, in Hugging Face's conventions (one vocabulary everywhere).

- ``sft``: ``{"messages": [...prompt, {"role": "assistant", "content": answer}]}`` with the rewrite, or
  the original answer where it scored at least ``min_score``;
- ``preference``: ``{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`` from a rewrite
  (chosen) of a low-scored answer (rejected);
- ``reward``: ``{"prompt": [...], "completion": [assistant], "reward": score}``, and each rewrite as a
  completion with the top score.

Every row carries ``meta``: the source run, the call id, the rater, the action and the round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, ConfigProblem
from ..llm.agent_llm import other_orders, reordered
from ..store import RunStore
from .ratings import GOOD, Call, load_calls

KINDS = ("sft", "preference", "reward")


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def dataset_rows(run_dir: Path, kind: str, min_score: float = 4.0, rater: str | None = None,
                 exclude_agents: frozenset[str] | set[str] = frozenset(), anchor: bool = False,
                 balance: bool = False, permute: int = 0, seed: int = 0,
                 anchor_answers: dict[int, str] | None = None,
                 unsure: frozenset[int] | set[int] = frozenset(),
                 anchor_targets: dict[int, dict[str, float]] | None = None,
                 keep: frozenset[str] | set[str] = frozenset(),
                 skip: frozenset[str] | set[str] = frozenset()) -> list[dict[str, Any]]:
    """The rows of one dataset kind (see the module docstring); a one-line error when there are none.

    Calls of ``exclude_agents`` (a hold-out set) are left out. For ``sft``:

    - ``anchor`` adds the recorded answers of the decisions nobody rated (``meta.rater = "anchor"``),
      so training on the rated decisions does not drag the others along. (Answers drawn at random
      from a decision's option shares were tried: the model cannot fit labels unrelated to the
      prompt and learns the commonest option, collapsing the decision; job seeking, 2026-11-30.)
    - ``balance`` repeats each rated decision's rarer answers (up to 4 times; counted among the calls
      offered the same options), so that the few corrections are not drowned by the many kept answers.
      A kept answer (not a rewrite) that was rated wrong on another call of the decision is never
      repeated: it would teach the error louder.
    - ``anchor_answers`` (call id -> option) replaces an anchor's recorded answer, which its position
      may have decided, with the base model's preference once position is averaged out (see
      ``exam.preferred``); anchors of calls without one are left out, and ``memory.*`` decisions
      are anchored too.
    - ``unsure`` (call ids): rated calls whose checks name no right option (every option passes, as a
      screening of a CV meeting some of the requirements). Their kept answer was not judged right,
      only not wrong, and its position may have decided it: it is replaced by ``anchor_answers``'
      option for the call, or left out where there is none.
    - ``anchor_targets`` (call id -> option probabilities): the base's order-averaged preference of an
      anchor (or an ``unsure`` call), written as ``meta.target`` for the choice loss, which trains the
      call toward that distribution rather than the one answer drawn from it. Every choice row names
      its options (``meta.options``).
    - ``permute`` adds, for every choice row whose prompt states its option order (``llm.shuffle_options``),
      up to that many copies under other orders (all other orders of two or three options, else a
      seeded sample): the answer's content stays, its position moves, so position is no cue.
    - ``keep`` (action names): their rated rows (not the ``unsure`` ones) are marked ``meta.keep``, so
      a row cap takes them first, up to 60% of it (``training.spread_sample``); their repeats and reorderings too.
    - ``skip`` (action names): their calls give no row, rated or anchored. They stay rated and examined,
      only not trained (``gensim correct --no-train``): their corrections may teach something else.
    """
    if kind not in KINDS:
        raise ConfigError([ConfigProblem("<command line>", "--kind", f"one of {', '.join(KINDS)}, got {kind!r}")])
    if not 1 <= min_score <= 5:
        raise ConfigError([ConfigProblem("<command line>", "--min-score", "must be between 1 and 5")])
    store = RunStore(run_dir / "run.sqlite")
    try:
        q = "SELECT llm_call_id, rater, score, rewrite FROM ratings"
        args: tuple = ()
        if rater:
            q += " WHERE rater LIKE ?"
            args = (rater + "%",)
        ratings = list(store.db.execute(q + " ORDER BY id", args))
        if not ratings:
            raise ConfigError([ConfigProblem(str(run_dir), "ratings", "none" + (f" by {rater}*" if rater else "")
                                             + ": rate the run first (gensim rate RUN --by checks|judge|file)")])
        calls = {c.id: c for c in load_calls(store, "WHERE id IN (SELECT llm_call_id FROM ratings)")}
        unrated = _unrated(store, exclude_agents, memory=anchor_answers is not None, skip=skip) if anchor else []
    finally:
        store.close()
    rewrites: dict[int, set[str]] = {}
    for call_id, _, _, rw in ratings:
        if rw is not None:
            rewrites.setdefault(call_id, set()).add(rw)
    if kind in ("sft", "preference"):
        clash = sorted(c for c, rws in rewrites.items() if len(rws) > 1)
        if clash:
            raise ConfigError([ConfigProblem(str(run_dir), "ratings", f"calls {clash[:5]} have contradicting rewrites "
                                             "from different raters: choose one with --rater")])
    out, seen = [], set()
    low = {c for c, _, s, _ in ratings if s is not None and s < min_score}
    for call_id, who, score, rw in ratings:
        call = calls[call_id]
        if call.agent_id in exclude_agents or call.action in skip:
            continue
        meta = {"run": str(run_dir), "call_id": call_id, "rater": who, "action": call.action, "round": call.round}
        if kind == "sft":
            # a call some rater corrected trains on the correction only, never on the answer it replaced
            answer = next(iter(rewrites[call_id])) if call_id in rewrites else (
                call.completion if call.valid and call_id not in low and score is not None else None)
            if answer is not None and call_id in unsure and call_id not in rewrites:
                answer = (anchor_answers or {}).get(call_id)
                meta["anchored"] = True
            elif call.action in keep:
                meta["keep"] = True
            if answer is not None and call_id not in seen:
                seen.add(call_id)
                out.append({"messages": [*call.messages, *_assistant(answer)],
                            "meta": _with_choice(meta, call, answer, (anchor_targets or {}).get(call_id)
                                                 if meta.get("anchored") else None)})
        elif kind == "preference":
            if rw is not None and rw != call.completion and (score is None or score < min_score):
                out.append({"prompt": call.messages, "chosen": _assistant(rw), "rejected": _assistant(call.completion),
                            "meta": meta})
        else:
            if score is not None:
                out.append({"prompt": call.messages, "completion": _assistant(call.completion), "reward": float(score),
                            "meta": meta})
            if rw is not None and rw != call.completion:
                out.append({"prompt": call.messages, "completion": _assistant(rw), "reward": GOOD,
                            "meta": {**meta, "rewrite": True}})
    if kind == "sft" and balance:
        wrong: dict[str, set[str]] = {}
        for call_id in low:
            wrong.setdefault(calls[call_id].action, set()).add(calls[call_id].completion)
        out = _balanced(out, wrong, set(rewrites))
    if kind == "sft" and anchor:
        if anchor_answers is not None:  # the base's order-averaged preference; calls it has none for go
            unrated = [c for c in unrated if c.id in anchor_answers]
        for c in unrated:
            answer = c.completion if anchor_answers is None else anchor_answers[c.id]
            meta = {"run": str(run_dir), "call_id": c.id, "rater": "anchor", "action": c.action, "round": c.round}
            out.append({"messages": [*c.messages, *_assistant(answer)],
                        "meta": _with_choice(meta, c, answer, (anchor_targets or {}).get(c.id))})
    if kind == "sft" and permute:
        out = _permuted(out, {c.id: c.choices for c in [*calls.values(), *unrated] if c.choices}, permute, seed)
    if not out:
        raise ConfigError([ConfigProblem(str(run_dir), "ratings", f"no {kind} rows: the ratings hold no "
                                         + ("rewrites of low-scored answers" if kind == "preference" else
                                            "usable answers") + f" (min score {min_score})")])
    return out


def _with_choice(meta: dict[str, Any], call: Call, answer: str,
                 target: dict[str, float] | None) -> dict[str, Any]:
    """``meta`` with the call's options (the choice loss trains on them) and, for an anchor, the
    base's option probabilities to train toward (``training.choice``)."""
    if not call.choices or answer not in call.choices:
        return meta
    out = {**meta, "options": list(call.choices)}
    if target and set(target) <= set(call.choices) and sum(target.values()) > 0:
        out["target"] = {o: round(float(p), 4) for o, p in target.items()}
    return out


def _unrated(store: RunStore, exclude_agents: frozenset[str] | set[str], memory: bool = False,
             skip: frozenset[str] | set[str] = frozenset()) -> list[Call]:
    """Valid choice calls of decisions nobody rated, outside ``exclude_agents`` and the ``skip``
    actions (``memory.*`` only when ``memory``: its recorded answers lean on position)."""
    rated = _rated_actions(store)
    where = "WHERE choices IS NOT NULL AND valid = 1 AND id NOT IN (SELECT llm_call_id FROM ratings)"
    if not memory:
        where += " AND action NOT LIKE 'memory.%'"
    return [c for c in load_calls(store, where)
            if c.action not in rated and c.action not in skip and c.agent_id not in exclude_agents]


def _rated_actions(store: RunStore) -> frozenset[str]:
    return frozenset(a for (a,) in store.db.execute(
        "SELECT DISTINCT action FROM llm_calls WHERE id IN (SELECT llm_call_id FROM ratings)"))


def rated_actions(run_dir: Path) -> frozenset[str]:
    """The decisions (call actions) some rating of the run grades: the rest are anchored or skipped."""
    store = RunStore(Path(run_dir) / "run.sqlite", readonly=True)
    try:
        return _rated_actions(store)
    finally:
        store.close()


def anchor_candidates(run_dir: Path, exclude_agents: frozenset[str] | set[str] = frozenset(),
                      skip: frozenset[str] | set[str] = frozenset()) -> list[Call]:
    """The calls ``dataset_rows(anchor=True, anchor_answers=..., skip=...)`` may anchor (rate the run first)."""
    store = RunStore(Path(run_dir) / "run.sqlite", readonly=True)
    try:
        return _unrated(store, exclude_agents, memory=True, skip=skip)
    finally:
        store.close()


def _balanced(rows: list[dict[str, Any]], wrong: dict[str, set[str]] | None = None,
              rewritten: set[int] = frozenset(), cap: int = 4) -> list[dict[str, Any]]:
    """Per action and set of options shown, repeat the rows of rarer answers towards the commonest
    answer's count (at most ``cap`` times): an answer is rare only among the calls that offered it (job
    seeking's "2", the second of two offers, was repeated 4 times against single-offer calls' "1",
    and taught "not the first"). A kept answer in ``wrong[action]`` (rated wrong on some call) appears
    once; rows of ``rewritten`` calls (corrections) are repeated whatever their text. Anchored rows
    (``meta.anchored``: calls no check grades, trained toward the base's preference) are not counted
    among the answers: they say nothing right or wrong (counted, the anchored "apply" of the postings
    no check grades doubled the corrected "skip" rows, run S3's first start). They are balanced as one
    more answer of their group instead, repeated toward its commonest rated answer (same cap): run S4's
    11 anchored offer responses (offers at 80-100% of the desired pay) against 26 kept "accept" and 14
    corrected "decline" rows, repeated to 28, drifted 0.79 toward declining."""
    by: dict[tuple[str, tuple[str, ...]], dict[str, list[dict[str, Any]]]] = {}
    held: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["meta"]["action"], tuple(sorted(r["meta"].get("options") or ())))
        if r["meta"].get("anchored"):
            held.setdefault(key, []).append(r)
        else:
            by.setdefault(key, {}).setdefault(r["messages"][-1]["content"], []).append(r)
    out: list[dict[str, Any]] = []
    for key, v in held.items():
        top = max((len(a) for a in by.get(key, {}).values()), default=0)
        out += _repeated(v, min(cap, max(1, round(top / len(v)))))
    for (action, _), answers in by.items():
        top = max(len(v) for v in answers.values())
        bad = (wrong or {}).get(action, set())
        for answer, v in answers.items():
            times = min(cap, max(1, round(top / len(v))))
            out += [x for r in v for x in _repeated([r], times if answer not in bad or r["meta"]["call_id"] in
                                                     rewritten else 1)]
    return out


def _repeated(rows: list[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    """Each row ``times`` times, the copies marked ``meta.repeat`` (their reorderings are drawn apart)."""
    return [r if k == 0 else {**r, "meta": {**r["meta"], "repeat": k}} for r in rows for k in range(times)]


def _permuted(rows: list[dict[str, Any]], choices: dict[int, list[str]], copies: int,
              seed: int) -> list[dict[str, Any]]:
    """Each row, then up to ``copies`` copies of it with its options stated in other orders."""
    out: list[dict[str, Any]] = []
    for r in rows:
        out.append(r)
        shown = choices.get(r["meta"]["call_id"])
        if not shown:
            continue
        orders = other_orders(shown, copies, f"{seed}:permute:{r['meta']['call_id']}:{r['meta'].get('repeat', 0)}")
        prompt, answer = r["messages"][:-1], r["messages"][-1]
        for k, order in enumerate(orders[:copies], start=1):
            moved = reordered(prompt, shown, order)
            if moved is None:  # the prompt states no order: nothing to move
                break
            out.append({"messages": [*moved, answer], "meta": {**r["meta"], "permuted": k}})
    return out


def write_dataset(run_dir: Path, kind: str, out: Path, min_score: float = 4.0, rater: str | None = None,
                  exclude_agents: frozenset[str] | set[str] = frozenset(), anchor: bool = False,
                  balance: bool = False, permute: int = 0, seed: int = 0,
                  anchor_answers: dict[int, str] | None = None, unsure: frozenset[int] | set[int] = frozenset(),
                  anchor_targets: dict[int, dict[str, float]] | None = None,
                  keep: frozenset[str] | set[str] = frozenset(), skip: frozenset[str] | set[str] = frozenset()) -> int:
    """Write a dataset as JSONL; returns the number of rows."""
    rows = dataset_rows(run_dir, kind, min_score, rater, exclude_agents, anchor, balance, permute, seed,
                        anchor_answers, unsure, anchor_targets, keep, skip)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return len(rows)
