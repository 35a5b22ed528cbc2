"""Ratings of a run's LLM calls: from its checks, from an LLM judge, or imported from people.

A rating is a 1-5 score and/or a rewrite (the answer the agent should have given: for a choice one
of the call's own options, for JSON a value valid for the call's schema), the rater
(``check:<name>``, ``judge:<config_name>``, ``human:<name>``), a reason and a time. Ratings go to
the run's ``ratings`` table; nothing the run recorded is changed.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..config import ConfigError, ConfigProblem
from ..llm.structured import StructuredOutputError, parse_json
from ..llm.types import ChatRequest, LLMError
from ..store import RunStore

GOOD, BAD = 5.0, 1.0  # scores for actions that pass / fail a check


@dataclass(frozen=True, slots=True)
class Rating:
    """One rating of one recorded LLM call."""

    llm_call_id: int
    rater: str
    score: float | None
    rewrite: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """A recorded call, as a rater sees it."""

    id: int
    round: int
    phase: str
    agent_id: str
    action: str
    messages: list[dict[str, str]]
    completion: str
    choices: list[str] | None
    json_schema: dict[str, Any] | None
    valid: bool


def load_calls(store: RunStore, where: str = "", args: tuple = ()) -> list[Call]:
    q = ("SELECT id, round, phase, agent_id, action, prompt, completion, choices, json_schema, valid FROM llm_calls "
         f"{where} ORDER BY id")
    return [Call(i, r, ph, a, act, json.loads(p), c or "", json.loads(ch) if ch else None,
                 json.loads(js) if js else None, bool(v))
            for i, r, ph, a, act, p, c, ch, js, v in store.db.execute(q, args)]


def valid_rewrite(call: Call, rewrite: str | None) -> bool:
    """A rewrite must be an answer the call could have given: one of its options, or JSON for its schema."""
    if rewrite is None:
        return True
    if call.choices:
        return rewrite in call.choices
    if call.json_schema is not None and not _json_ok(rewrite):
        return False
    return bool(rewrite.strip())


def add_ratings(store: RunStore, ratings: list[Rating]) -> int:
    """Store ratings, skipping any the same rater already gave the same call (re-rating is idempotent)."""
    have = set(store.db.execute("SELECT llm_call_id, rater FROM ratings"))
    new = [r for r in ratings if (r.llm_call_id, r.rater) not in have]
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    with store.db:
        store.db.executemany("INSERT INTO ratings (llm_call_id, rater, score, rewrite, created, reason) VALUES (?,?,?,?,?,?)",
                             [(r.llm_call_id, r.rater, r.score, r.rewrite, now, r.reason) for r in new])
    return len(new)


# -- from checks -----------------------------------------------------------------------------------


def ratings_from_checks(store: RunStore, action: str | None = None, round_: int | None = None) -> list[Rating]:
    """A failed check gives the action's calls a low score (and its rewrite); a passed one a high score.

    A check's rewrite is an answer to one of the action's calls: when the action links several, the
    calls whose options hold it get it, and the others (free text beside a choice, say) get none.
    """
    q = ("SELECT c.check_id, c.check_name, c.ok, c.reason, c.rewrite, c.llm_call_id, c.choices, l.json_schema "
         "FROM check_calls c JOIN llm_calls l ON l.id = c.llm_call_id WHERE 1 = 1")
    args: list[Any] = []
    if action:
        q += " AND c.action = ?"
        args.append(action)
    if round_ is not None:
        q += " AND c.round = ?"
        args.append(round_)
    rows = list(store.db.execute(q + " ORDER BY check_id, llm_call_id", args))
    by_check: dict[int, list[tuple]] = {}
    for r in rows:
        by_check.setdefault(r[0], []).append(r)
    out = []
    for group in by_check.values():
        rewrite = group[0][4]
        opts = {r[5]: json.loads(r[6]) if r[6] else None for r in group}
        holders = {cid for cid, o in opts.items() if o is not None and rewrite in o}
        for _, name, ok, reason, _, call_id, _, schema in group:
            mine = None
            if not ok and rewrite is not None:
                if holders:
                    mine = rewrite if call_id in holders else None
                elif opts[call_id] is None and (schema is None or _json_ok(rewrite)):
                    mine = rewrite
            out.append(Rating(call_id, f"check:{name}", GOOD if ok else BAD, mine, reason or ("passed" if ok else "failed")))
    return out


def _json_ok(text: str) -> bool:
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


# -- from a file -----------------------------------------------------------------------------------


def _read_rows(path: Path) -> list[tuple[int, Any]]:
    """``(line number, row)`` of a CSV (comma, semicolon or tab; a byte-order mark is fine) or JSONL file."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often start a CSV with a BOM
    except UnicodeDecodeError as e:
        raise ConfigError([ConfigProblem(str(path), "", f"not UTF-8 text: {e.reason}")]) from None
    if path.suffix.lower() == ".csv":
        lines = text.splitlines()
        header = lines[0] if lines else ""
        delimiter = max(",;\t", key=header.count) if header else ","  # the header names llm_call_id and score
        return list(enumerate(csv.DictReader(lines, delimiter=delimiter), start=2))
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ConfigError([ConfigProblem(str(path), f"line {n}", f"invalid JSON: {e.msg}")]) from None
    return rows


def _score(raw: Any) -> float | str:
    """A 1-5 score from a file's cell, or why it is not one."""
    if isinstance(raw, bool):  # JSON true is not 1
        return f"must be a number 1-5, got {json.dumps(raw)}"
    try:
        score = float(raw)
    except (TypeError, ValueError):
        return f"must be a number 1-5, got {raw!r}"
    return score if 1 <= score <= 5 else f"must be 1-5, got {raw!r}"


def _rewrite(call: Call, raw: Any) -> str | None:
    """A file's rewrite as text: a number naming one of a choice's options is read as that option."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"must be text (an answer the call could give), got {json.dumps(raw)}")
    if isinstance(raw, int | float):
        text = str(raw)
        if call.choices and text in call.choices:
            return text
        raise ValueError(f"must be text (an answer the call could give), got the number {raw}"
                         + (f" (options: {call.choices})" if call.choices else ""))
    return raw


def ratings_from_file(store: RunStore, path: Path) -> list[Rating]:
    """Human ratings from CSV or JSONL: ``llm_call_id``, ``score`` (1-5) and/or ``rewrite``, optional
    ``rater`` (default ``human:<file name>``) and ``reason``. Every problem names the file and line."""
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(path), "--file", "file not found")])
    rows = _read_rows(path)
    if not rows:
        raise ConfigError([ConfigProblem(str(path), "", "no ratings in the file")])
    calls = {c.id: c for c in load_calls(store)}
    problems, out = [], []
    seen: dict[tuple[int, str], int] = {}
    for n, row in rows:
        where = f"line {n}"
        if not isinstance(row, dict):
            problems.append(ConfigProblem(str(path), where, f"must be a JSON object with llm_call_id, score "
                                          f"and/or rewrite, got {type(row).__name__}"))
            continue
        raw_id = row.get("llm_call_id", row.get("call_id"))
        try:
            if isinstance(raw_id, bool) or isinstance(raw_id, float) and not raw_id.is_integer():
                raise ValueError
            call = calls[int(raw_id)]
        except (KeyError, ValueError, TypeError):
            problems.append(ConfigProblem(str(path), f"{where}: llm_call_id", f"no such call in the run: {raw_id!r}"))
            continue
        score = None
        if row.get("score") not in (None, ""):
            got = _score(row["score"])
            if isinstance(got, str):
                problems.append(ConfigProblem(str(path), f"{where}: score", got))
                continue
            score = got
        try:
            rewrite = _rewrite(call, row.get("rewrite"))
        except ValueError as e:
            problems.append(ConfigProblem(str(path), f"{where}: rewrite", str(e)))
            continue
        if score is None and rewrite is None:
            problems.append(ConfigProblem(str(path), where, "needs a score, a rewrite, or both"))
            continue
        if not valid_rewrite(call, rewrite):
            problems.append(ConfigProblem(str(path), f"{where}: rewrite", f"not a valid answer for call {call.id} "
                                          f"(options: {call.choices})"))
            continue
        rater = str(row.get("rater") or f"human:{path.stem}")
        if (call.id, rater) in seen:
            problems.append(ConfigProblem(str(path), f"{where}: llm_call_id", f"call {call.id} is rated by {rater} "
                                          f"on line {seen[(call.id, rater)]} already: one rating per call and rater"))
            continue
        seen[(call.id, rater)] = n
        out.append(Rating(call.id, rater, score, rewrite, str(row.get("reason") or "")))
    if problems:
        raise ConfigError(problems)
    return out


# -- from a judge ----------------------------------------------------------------------------------


def sample_calls(calls: list[Call], n: int, seed: int, failed_first: set[int] | None = None) -> list[Call]:
    """``n`` calls, seeded, spread evenly over actions; calls that failed a check come first."""
    rng = random.Random(seed)
    first = [c for c in calls if failed_first and c.id in failed_first]
    rng.shuffle(first)
    by_action: dict[str, list[Call]] = {}
    for c in calls:
        if not (failed_first and c.id in failed_first):
            by_action.setdefault(c.action, []).append(c)
    for lst in by_action.values():
        rng.shuffle(lst)
    out = first[:n]
    while len(out) < n and any(by_action.values()):
        for action in sorted(by_action):
            if by_action[action] and len(out) < n:
                out.append(by_action[action].pop())
    return sorted(out, key=lambda c: c.id)


def render_call(call: Call) -> str:
    return "\n".join(f"[{m['role']}] {m['content']}" for m in call.messages)


JUDGE_SYSTEM = ("You judge whether an agent in a social simulation answered as the person described would, "
                "given its situation. Be strict and brief.")


async def judge_call(client: Any, call: Call, rubric: str, profile: str, rewrite: bool, max_tokens: int = 48,
                     ) -> Rating | None:
    """Score one call 1-5 (a structured choice) and, when asked, rewrite it within the call's own options."""
    context = (f"Agent profile: {profile}\n\nWhat the agent was asked:\n{render_call(call)}\n\n"
               f"The agent answered: {call.completion!r}\n\nRubric: {rubric}")
    score_req = ChatRequest([{"role": "system", "content": JUDGE_SYSTEM},
                             {"role": "user", "content": context + "\n\nScore the answer from 1 (wrong for this "
                                                                   "person) to 5 (exactly right). Answer with the number."}],
                            max_tokens=4, choices=["1", "2", "3", "4", "5"])
    try:
        score = float((await client.complete(score_req)).text)
    except StructuredOutputError:
        return None
    better = None
    if rewrite:
        ask = context + "\n\nGive the answer this person should have given, and nothing else."
        req = ChatRequest([{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": ask}],
                          max_tokens=max_tokens, choices=call.choices, json_schema=call.json_schema)
        try:
            better = (await client.complete(req)).text.strip() or None
        except StructuredOutputError:
            better = None
    return Rating(call.id, "", score, better if better and valid_rewrite(call, better) else None,
                  "judged against the rubric")


async def ratings_from_judge(calls: list[Call], client: Any, rater: str, rubric_for: Any, profile_of: Any,
                             rewrite: bool = True, concurrency: int = 16, progress: bool = True) -> list[Rating]:
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(calls), desc="judging", unit="call", disable=not progress)

    async def one(c: Call) -> Rating | None:
        async with sem:
            try:
                r = await judge_call(client, c, rubric_for(c), profile_of(c.agent_id), rewrite)
            except LLMError:
                r = None
            bar.update(1)
            return None if r is None else Rating(r.llm_call_id, rater, r.score, r.rewrite, r.reason)

    out = [r for r in await asyncio.gather(*(one(c) for c in calls)) if r is not None]
    bar.close()
    return out


def judge_agreement(scores: dict[int, float], passed: set[int], failed: set[int], min_each: int = 5) -> dict[str, Any]:
    """How a judge's scores agree with the checks, on the judged calls the checks also graded.

    ``auc``: the chance that a call passing its checks scores above one failing them (ties count
    half): 0.5 is a judge unrelated to the checks, 1.0 one that always ranks them right.
    ``verdict``: ``constant`` (one score for everything: it tells nothing), ``unrelated`` (auc
    below 0.6), ``informative``, or ``too few checked calls`` (fewer than ``min_each`` of either).
    """
    distinct = sorted(set(scores.values()))
    good = [s for c, s in scores.items() if c in passed and c not in failed]
    bad = [s for c, s in scores.items() if c in failed]
    out: dict[str, Any] = {"scored": len(scores), "distinct_scores": distinct[:10], "passed": len(good),
                           "failed": len(bad), "mean_passed": round(sum(good) / len(good), 3) if good else None,
                           "mean_failed": round(sum(bad) / len(bad), 3) if bad else None, "auc": None}
    if good and bad:
        wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
        out["auc"] = round(wins / (len(good) * len(bad)), 3)
    if len(distinct) <= 1 and scores:
        out["verdict"] = "constant"
    elif len(good) < min_each or len(bad) < min_each:
        out["verdict"] = "too few checked calls"
    elif out["auc"] < 0.6:
        out["verdict"] = "unrelated"
    else:
        out["verdict"] = "informative"
    return out


def judge_warning(agreement: dict[str, Any]) -> str | None:
    """One line saying why a judge's scores should not be trusted, or None when they can be."""
    a = agreement
    if a["verdict"] == "constant":
        return (f"the judge gave every one of {a['scored']} calls the score {a['distinct_scores'][0]:g}: "
                "it cannot tell answers apart (uninformative)")
    if a["verdict"] == "unrelated":
        return (f"the judge's scores are unrelated to the checks (AUC {a['auc']:.2f} on {a['passed']} passing and "
                f"{a['failed']} failing calls; 0.5 is chance): uninformative")
    if a["verdict"] == "too few checked calls":
        return (f"the judge could not be scored against the checks ({a['passed']} passing and {a['failed']} failing "
                "calls among those judged; 5 of each needed)")
    return None
