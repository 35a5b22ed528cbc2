"""Read a run folder's tables as pandas DataFrames: the one query layer of the web interface and ``gensim export``.

Long tables (agents, actions, LLM calls) are paged in SQL, never loaded whole, so a 100,000-agent run
answers a page in milliseconds. Everything here opens the database read-only: a live run may be writing it.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLES = ("agents", "actions", "llm_calls", "metrics", "round_costs", "interventions", "ratings", "checks")
COST_COLUMNS = ("wall_s", "llm_calls", "prompt_tokens", "completion_tokens", "replayed_calls", "failed_calls")
JSON_COLUMNS = {"agents": ("profile",), "actions": ("data", "calls"), "llm_calls": ("choices", "json_schema"),
                "interventions": ("data",), "checks": ("calls",)}
KEY_FIELDS = 4  # profile fields shown beside each agent in the table
MAX_CATEGORIES = 30  # a text profile field with more values is not one-hot encoded for the map


@dataclass(frozen=True)
class Page:
    """One page of a long table and the number of rows the whole filtered table has."""

    rows: pd.DataFrame
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class CallFilter:
    """Which LLM calls a calls page shows (None: any)."""

    round: int | None = None
    action: str | None = None
    agent_type: str | None = None
    agent_id: str | None = None
    model: str | None = None
    failed_check: str | None = None  # a check's name, or "*" for any failed check
    rater: str | None = None  # calls rated by this rater ("*": by anyone)


@dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands."""

    run_dir: Path
    scenario: str | None
    rounds_done: int
    rounds: int | None
    finished: bool
    stopped: str | None  # why it stopped early, where recorded
    agents: int

    @property
    def state(self) -> str:
        if self.finished:
            return "finished"
        if self.stopped:
            return "stopped"
        return "incomplete"


class RunQuery:
    """Read-only queries on one run folder's ``run.sqlite``."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        path = self.run_dir / "run.sqlite"
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir}: not a run folder (no run.sqlite)")
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _df(self, sql: str, args: tuple | list = ()) -> pd.DataFrame:
        cur = self.db.execute(sql, tuple(args))
        cols = [d[0] for d in cur.description]
        return pd.DataFrame.from_records(cur.fetchall(), columns=cols)

    def _one(self, sql: str, args: tuple | list = ()) -> Any:
        return self.db.execute(sql, tuple(args)).fetchone()[0]

    # -- the run as a whole --
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def status(self) -> RunStatus:
        meta = self.meta()
        rounds = None
        cfg = self.run_dir / "config.json"
        if cfg.is_file():
            try:
                rounds = int(json.loads(cfg.read_text())["simulation"]["rounds"])
            except (ValueError, KeyError, TypeError):
                rounds = None
        stopped = meta.get("stopped")
        return RunStatus(self.run_dir, meta.get("scenario"), int(self._one("SELECT COALESCE(MAX(round), 0) FROM metrics")),
                         rounds, bool(meta.get("finished")), stopped.get("reason") if isinstance(stopped, dict) else None,
                         int(self._one("SELECT COUNT(*) FROM agents")))

    def metrics(self) -> pd.DataFrame:
        """Per-round metrics, one row per round (index ``round``), one column per metric."""
        long = self.metrics_long()
        if long.empty:
            return pd.DataFrame(index=pd.Index([], name="round"))
        return long.pivot(index="round", columns="name", values="value").sort_index()

    def metrics_long(self) -> pd.DataFrame:
        """Per-round metrics as tidy rows ``(round, name, value)``."""
        return self._df("SELECT round, name, value FROM metrics ORDER BY round, name")

    def agent_memory(self, agent_id: str) -> dict[str, Any]:
        """An agent's state and memory at the run's last whole checkpoint: short-term items, long-term
        items with their round and importance, reflections. Empty when the run has no checkpoint."""
        from ..core.checkpoint import checkpoint_problem, read_msgpack

        folders = sorted((self.run_dir / "checkpoints").glob("round_*"), reverse=True)
        for d in folders:
            if checkpoint_problem(d) is not None:
                continue
            for f in sorted(d.glob("group_*.msgpack")):
                got = (read_msgpack(f).get("agents") or {}).get(agent_id)
                if got is not None:
                    mem = got.get("memory") or {}
                    long = [{"text": t, "round": r, "importance": i} for t, r, i in
                            zip(mem.get("texts") or [], mem.get("rounds") or [], mem.get("importance") or [],
                                strict=False)]
                    return {"checkpoint_round": int(d.name.split("_")[1]), "state": got.get("state") or {},
                            "short_term": [{"text": t, "round": r} for t, r in mem.get("short") or []],
                            "long_term": long, "reflections": mem.get("reflections", 0)}
            break  # the agent is in no group of the last whole checkpoint
        return {}

    def has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def costs(self) -> pd.DataFrame:
        """What each round cost (index ``round``): wall time, LLM calls, prompt and generated tokens,
        calls answered from a recording, failed calls. Empty for a run made before costs were kept."""
        if not self.has_table("round_costs"):
            return pd.DataFrame(columns=list(COST_COLUMNS), index=pd.Index([], name="round"))
        return self._df(f"SELECT round, {', '.join(COST_COLUMNS)} FROM round_costs ORDER BY round").set_index("round")

    def events(self) -> pd.DataFrame:
        """Interventions, deployments, interviews, failed steps, the fork it is of and the stop reason,
        in time order."""
        df = self._df("SELECT id, round, kind, target, data FROM interventions ORDER BY id")
        df["data"] = [json.loads(d) if d else None for d in df["data"]]
        meta = self.meta()
        stopped = meta.get("stopped")
        if isinstance(stopped, dict):
            extra = pd.DataFrame([{"id": None, "round": stopped.get("round"), "kind": "stopped", "target": "*",
                                   "data": {"reason": stopped.get("reason")}}])
            df = pd.concat([df, extra], ignore_index=True) if len(df) else extra
        if meta.get("parent"):  # a fork: re-runs from this round of its parent
            extra = pd.DataFrame([{"id": None, "round": meta.get("from_round"), "kind": "forked", "target": "*",
                                   "data": {"parent": meta["parent"], "from_round": meta.get("from_round"),
                                            "replay": bool(meta.get("replay_from"))}}])
            df = pd.concat([df, extra], ignore_index=True) if len(df) else extra
        failed = self._df("SELECT round, value FROM metrics WHERE name = 'failed_steps' ORDER BY round")
        prev = 0.0
        rows = []
        for r, v in failed.itertuples(index=False):
            if v and v > prev:
                rows.append({"id": None, "round": r, "kind": "failed steps", "target": "*",
                             "data": {"failed_steps": int(v - prev)}})
            prev = v or 0.0
        if rows:
            df = pd.concat([df, pd.DataFrame(rows)], ignore_index=True)
        return df.sort_values(["round", "id"], kind="stable", na_position="last").reset_index(drop=True)

    # -- agents --
    def agent_types(self) -> list[str]:
        return [t for (t,) in self.db.execute("SELECT DISTINCT agent_type FROM agents ORDER BY agent_type")]

    def agents(self, search: str | None = None, agent_type: str | None = None, offset: int = 0,
               limit: int = 50) -> Page:
        """A page of agents: id, type, name, a few profile fields and the last thing each did."""
        where, args = [], []
        if agent_type:
            where.append("agent_type = ?")
            args.append(agent_type)
        if search:
            where.append("(agent_id LIKE ? OR json_extract(profile, '$.name') LIKE ?)")
            args += [f"%{search}%"] * 2
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = int(self._one(f"SELECT COUNT(*) FROM agents{clause}", args))
        raw = self._df(f"SELECT agent_id, agent_type, profile FROM agents{clause} ORDER BY rowid LIMIT ? OFFSET ?",
                       [*args, limit, offset])
        rows = []
        for aid, typ, prof in raw.itertuples(index=False):
            p = json.loads(prof)
            fields = [(k, v) for k, v in p.items() if k != "name" and isinstance(v, (str, int, float, bool))]
            rows.append({"agent_id": aid, "type": typ, "name": p.get("name", ""),
                         "profile": ", ".join(f"{k}={v}" for k, v in fields[:KEY_FIELDS])})
        df = pd.DataFrame(rows, columns=["agent_id", "type", "name", "profile"])
        last = self._last_actions(list(df["agent_id"]))
        df["last_action"] = [last.get(a, ("", None))[0] for a in df["agent_id"]]
        df["last_round"] = [last.get(a, ("", None))[1] for a in df["agent_id"]]
        return Page(df, total, offset, limit)

    def _last_actions(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {a: (act, r) for a, act, r in self.db.execute(
            f"SELECT agent_id, action, round FROM actions WHERE id IN (SELECT MAX(id) FROM actions "
            f"WHERE agent_id IN ({marks}) GROUP BY agent_id)", ids)}

    def agent(self, agent_id: str) -> dict[str, Any]:
        """One agent: profile, actions, check verdicts and LLM calls (KeyError when there is none)."""
        row = self.db.execute("SELECT agent_type, profile, grp FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            raise KeyError(f"no agent '{agent_id}' in this run")
        return {"agent_id": agent_id, "type": row[0], "profile": json.loads(row[1]), "group": row[2],
                "actions": self._df("SELECT round, phase, action, valid, data FROM actions WHERE agent_id = ? "
                                    "ORDER BY id", (agent_id,)),
                "checks": self._df("SELECT round, action, check_name, ok, reason FROM checks WHERE agent_id = ? "
                                   "ORDER BY id", (agent_id,)),
                "calls": self._df("SELECT id, round, action, model, prompt, completion FROM llm_calls "
                                  "WHERE agent_id = ? ORDER BY id", (agent_id,)),
                "changes": self._df("SELECT round, data FROM interventions WHERE kind = 'attribute' AND target = ? "
                                    "ORDER BY id", (agent_id,))}

    def agent_map(self, max_points: int = 5000, seed: int = 0) -> pd.DataFrame:
        """Agents placed in 2D, at most ``max_points`` of them (a seeded sample): the scenario's own
        coordinates where profiles carry ``x``/``y`` (or ``location: [x, y]``), else the first two
        principal components of the profiles' features (numbers as they are, text fields one-hot)."""
        total = int(self._one("SELECT COUNT(*) FROM agents"))
        if total > max_points:
            rng = np.random.default_rng(seed)
            picks = np.sort(rng.choice(total, size=max_points, replace=False)) + 1
            raw = self._df("SELECT a.agent_id, a.agent_type, a.profile FROM agents a JOIN "
                           "(SELECT value AS rn FROM json_each(?)) s ON a.rowid = s.rn", (json.dumps(picks.tolist()),))
        else:
            raw = self._df("SELECT agent_id, agent_type, profile FROM agents ORDER BY rowid")
        profiles = [json.loads(p) for p in raw["profile"]]
        xy = _coordinates(profiles)
        last = {}
        ids = list(raw["agent_id"])
        for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            last.update(self._last_actions(ids[i:i + 900]))
        return pd.DataFrame({"agent_id": ids, "type": raw["agent_type"], "x": xy[:, 0], "y": xy[:, 1],
                             "last_action": [last.get(a, ("none", None))[0] for a in ids]})

    # -- actions, calls, checks, ratings --
    def actions(self, round_: int | None = None, agent_id: str | None = None, offset: int = 0, limit: int = 100) -> Page:
        clause, args = _where(("round = ?", round_), ("agent_id = ?", agent_id or None))
        total = int(self._one(f"SELECT COUNT(*) FROM actions{clause}", args))
        df = self._df(f"SELECT id, round, phase, agent_id, action, valid, data FROM actions{clause} ORDER BY id "
                      "LIMIT ? OFFSET ?", [*args, limit, offset])
        return Page(df, total, offset, limit)

    def _call_where(self, f: CallFilter) -> tuple[str, list[Any]]:
        where, args = [], []
        for col, val in (("l.round", f.round), ("l.action", f.action), ("l.agent_id", f.agent_id), ("l.model", f.model)):
            if val is not None and val != "":
                where.append(f"{col} = ?")
                args.append(val)
        if f.agent_type:
            where.append("l.agent_id IN (SELECT agent_id FROM agents WHERE agent_type = ?)")
            args.append(f.agent_type)
        if f.failed_check:
            sub = "SELECT llm_call_id FROM check_calls WHERE ok = 0"
            if f.failed_check != "*":
                sub += " AND check_name = ?"
                args.append(f.failed_check)
            where.append(f"l.id IN ({sub})")
        if f.rater:
            sub = "SELECT llm_call_id FROM ratings"
            if f.rater != "*":
                sub += " WHERE rater = ?"
                args.append(f.rater)
            where.append(f"l.id IN ({sub})")
        return ((" WHERE " + " AND ".join(where)) if where else ""), args

    def calls(self, f: CallFilter | None = None, offset: int = 0, limit: int = 20) -> Page:
        """A page of LLM calls with their checks' verdicts and ratings."""
        clause, args = self._call_where(f or CallFilter())
        total = int(self._one(f"SELECT COUNT(*) FROM llm_calls l{clause}", args))
        df = self._df(f"SELECT l.id, l.round, l.agent_id, l.action, l.model, l.prompt, l.completion, l.choices "
                      f"FROM llm_calls l{clause} ORDER BY l.id LIMIT ? OFFSET ?", [*args, limit, offset])
        return Page(self._annotate(df), total, offset, limit)

    def sample_calls(self, n: int, seed: int, f: CallFilter | None = None) -> pd.DataFrame:
        """A seeded random sample of ``n`` calls matching ``f`` (the same seed, the same calls)."""
        clause, args = self._call_where(f or CallFilter())
        ids = [i for (i,) in self.db.execute(f"SELECT l.id FROM llm_calls l{clause} ORDER BY l.id", args)]
        if not ids:
            return self._annotate(self._df("SELECT id, round, agent_id, action, model, prompt, completion, choices "
                                           "FROM llm_calls WHERE 0"))
        picks = sorted(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False).tolist())
        df = self._df("SELECT id, round, agent_id, action, model, prompt, completion, choices FROM llm_calls "
                      "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", (json.dumps(picks),))
        return self._annotate(df)

    def _annotate(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add each call's check verdicts (``name: ok|FAIL``) and ratings (``rater: score``) to a calls frame."""
        ids = json.dumps([int(i) for i in df["id"]])
        verdicts: dict[int, list[str]] = {}
        for cid, name, ok in self.db.execute("SELECT llm_call_id, check_name, ok FROM check_calls WHERE llm_call_id "
                                             "IN (SELECT value FROM json_each(?))", (ids,)):
            verdicts.setdefault(cid, []).append(f"{name}: {'ok' if ok else 'FAIL'}")
        rated: dict[int, list[str]] = {}
        for cid, rater, score, rewrite in self.db.execute(
                "SELECT llm_call_id, rater, score, rewrite FROM ratings WHERE llm_call_id IN "
                "(SELECT value FROM json_each(?)) ORDER BY id", (ids,)):
            rated.setdefault(cid, []).append(f"{rater}: {score:g}" if score is not None else f"{rater}: rewrite"
                                             + (f" → {rewrite}" if rewrite else ""))
        out = df.copy()
        out["checks"] = ["; ".join(verdicts.get(int(i), [])) for i in df["id"]]
        out["ratings"] = ["; ".join(rated.get(int(i), [])) for i in df["id"]]
        return out

    def call(self, call_id: int) -> dict[str, Any]:
        """One LLM call with every recorded column (KeyError when there is none)."""
        cur = self.db.execute("SELECT * FROM llm_calls WHERE id = ?", (call_id,))
        row = cur.fetchone()
        if row is None:
            raise KeyError(f"no LLM call {call_id} in this run")
        out = dict(zip([d[0] for d in cur.description], row, strict=True))
        for col in ("choices", "json_schema"):
            out[col] = json.loads(out[col]) if out[col] else None
        return out

    def check_names(self) -> list[str]:
        return [n for (n,) in self.db.execute("SELECT DISTINCT check_name FROM checks ORDER BY check_name")]

    def call_actions(self) -> list[str]:
        return [a for (a,) in self.db.execute("SELECT DISTINCT action FROM llm_calls ORDER BY action") if a]

    def choice_actions(self) -> list[str]:
        """The actions of the run's choice calls (those offered options)."""
        return [a for (a,) in self.db.execute("SELECT DISTINCT action FROM llm_calls WHERE choices IS NOT NULL "
                                              "ORDER BY action") if a]

    def models(self) -> list[str]:
        return [m for (m,) in self.db.execute("SELECT DISTINCT model FROM llm_calls ORDER BY model") if m]

    def raters(self) -> list[str]:
        return [r for (r,) in self.db.execute("SELECT DISTINCT rater FROM ratings ORDER BY rater") if r]

    def checks(self, round_: int | None = None, failed_only: bool = False) -> pd.DataFrame:
        clause, args = _where(("round = ?", round_), ("ok = 0", True if failed_only else None))
        return self._df(f"SELECT id, round, phase, agent_id, action, check_name, ok, reason FROM checks{clause} "
                        "ORDER BY id", args)

    def ratings(self) -> pd.DataFrame:
        return self._df("SELECT id, llm_call_id, rater, score, rewrite, reason, created FROM ratings ORDER BY id")

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r} (one of {', '.join(TABLES)})")
        return int(self._one(f"SELECT COUNT(*) FROM {table}"))

    def table(self, name: str, decode_json: bool = False) -> pd.DataFrame:
        """A whole table (for export); ``decode_json`` turns its JSON text columns into Python values."""
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r} (one of {', '.join(TABLES)})")
        df = self._df(f"SELECT * FROM {name}")
        if decode_json:
            for col in JSON_COLUMNS.get(name, ()):
                if col in df:
                    df[col] = [json.loads(v) if isinstance(v, str) and v else None for v in df[col]]
        return df


EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def export_run(run_dir: str | Path, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
    """Write every table of a run to ``out_dir`` as CSV, JSONL or Parquet; returns the files written.

    Every format keeps JSON columns as the recorded text (``RunQuery.table(name, decode_json=True)``
    decodes them); Parquet keeps SQLite's integer, float and text types.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format: {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with RunQuery(run_dir) as rq:
        for table in TABLES:
            if not rq.has_table(table):  # a run folder older than the table
                continue
            path = out / f"{table}.{fmt}"
            if fmt == "parquet":
                rq.table(table).to_parquet(path, index=False)
            else:
                cur = rq.db.execute(f"SELECT * FROM {table}")
                cols = [d[0] for d in cur.description]
                with open(path, "w", newline="", encoding="utf-8") as f:
                    if fmt == "csv":
                        w = csv.writer(f)
                        w.writerow(cols)
                        w.writerows(cur)
                    else:
                        for row in cur:
                            f.write(json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False) + "\n")
            files.append(path)
    return files


def _where(*conds: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is not None (a condition without ``?`` takes none)."""
    parts, args = [], []
    for sql, value in conds:
        if value is not None:
            parts.append(sql)
            if "?" in sql:
                args.append(value)
    return ((" WHERE " + " AND ".join(parts)) if parts else ""), args


def _coordinates(profiles: list[dict[str, Any]]) -> np.ndarray:
    """2D positions for profiles: their own ``x``/``y`` or ``location``, else a PCA of their features."""
    if profiles and all(_own_xy(p) is not None for p in profiles):
        return np.array([_own_xy(p) for p in profiles], dtype=float)
    if not profiles:
        return np.zeros((0, 2))
    columns: dict[str, list[float]] = {}
    n = len(profiles)
    distinct: dict[str, set[str]] = {}
    for p in profiles:
        for k, v in p.items():
            if isinstance(v, str):
                distinct.setdefault(k, set()).add(v)
    # a text field with many values (a name, a bio) is no category: it would only spread the points apart
    categories = {k for k, vals in distinct.items() if len(vals) <= MAX_CATEGORIES}
    for i, p in enumerate(profiles):
        for k, v in p.items():
            if isinstance(v, (bool, int, float)):
                feats = {k: float(v)}
            elif isinstance(v, str) and k in categories:
                feats = {f"{k}={v}": 1.0}
            else:
                continue
            for name, val in feats.items():
                columns.setdefault(name, [0.0] * n)[i] = val
    if not columns:
        return np.zeros((n, 2))
    x = np.array(list(columns.values()), dtype=float).T
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    x = x / np.where(std > 0, std, 1.0)
    if x.shape[1] == 1:
        return np.column_stack([x[:, 0], np.zeros(n)])
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def _own_xy(p: dict[str, Any]) -> tuple[float, float] | None:
    if isinstance(p.get("x"), (int, float)) and isinstance(p.get("y"), (int, float)):
        return float(p["x"]), float(p["y"])
    loc = p.get("location")
    if isinstance(loc, (list, tuple)) and len(loc) == 2 and all(isinstance(v, (int, float)) for v in loc):
        return float(loc[0]), float(loc[1])
    return None
