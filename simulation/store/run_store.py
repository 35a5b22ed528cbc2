"""``run.sqlite``: agents, actions, LLM calls, metrics, embeddings, interventions and ratings.

Rows are buffered in memory during a phase and written in one transaction at its end, so the
hot path only appends tuples. WAL mode lets readers (the UI, exports) look while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..llm.cache import CachedAnswer

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, agent_type TEXT NOT NULL, profile TEXT NOT NULL,
    grp INTEGER);
CREATE TABLE IF NOT EXISTS actions (
  id INTEGER PRIMARY KEY, round INTEGER NOT NULL, phase TEXT NOT NULL, agent_id TEXT NOT NULL,
  action TEXT NOT NULL, valid INTEGER NOT NULL, data TEXT NOT NULL, seq INTEGER, calls TEXT);
CREATE INDEX IF NOT EXISTS actions_round ON actions(round);
CREATE TABLE IF NOT EXISTS llm_calls (
  id INTEGER PRIMARY KEY, round INTEGER, phase TEXT, agent_id TEXT, action TEXT, seq INTEGER, key TEXT,
  prompt TEXT, completion TEXT, choices TEXT, json_schema TEXT, endpoint TEXT, latency_ms REAL,
  prompt_tokens INTEGER, completion_tokens INTEGER, cached INTEGER, valid INTEGER, repairs INTEGER,
  attempts INTEGER, error TEXT, finish_reason TEXT, model TEXT);
CREATE INDEX IF NOT EXISTS llm_calls_round ON llm_calls(round);
CREATE TABLE IF NOT EXISTS metrics (round INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
  PRIMARY KEY (round, name));
CREATE TABLE IF NOT EXISTS round_costs (round INTEGER PRIMARY KEY, wall_s REAL, llm_calls INTEGER,
  prompt_tokens INTEGER, completion_tokens INTEGER, replayed_calls INTEGER, failed_calls INTEGER);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS interventions (id INTEGER PRIMARY KEY, round INTEGER, kind TEXT, target TEXT, data TEXT);
CREATE TABLE IF NOT EXISTS ratings (id INTEGER PRIMARY KEY, llm_call_id INTEGER, rater TEXT, score REAL,
  rewrite TEXT, created TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS actions_agent ON actions(agent_id, action);
CREATE TABLE IF NOT EXISTS checks (id INTEGER PRIMARY KEY, round INTEGER NOT NULL, phase TEXT NOT NULL,
  agent_id TEXT NOT NULL, act_seq INTEGER, action TEXT NOT NULL, check_name TEXT NOT NULL, ok INTEGER NOT NULL,
  reason TEXT, rewrite TEXT, calls TEXT);
CREATE INDEX IF NOT EXISTS checks_round ON checks(round);
CREATE VIEW IF NOT EXISTS check_calls AS
  SELECT c.id AS check_id, c.round, c.action, c.check_name, c.ok, c.reason, c.rewrite, l.id AS llm_call_id, l.choices
  FROM checks c JOIN llm_calls l ON l.round = c.round AND l.phase = c.phase AND l.agent_id = c.agent_id
  AND c.calls IS NOT NULL AND l.seq IN (SELECT value FROM json_each(c.calls));
"""

ACTION_COLS = "round, phase, agent_id, action, valid, data, seq, calls"
LLM_COLS = ("round, phase, agent_id, action, seq, key, prompt, completion, choices, json_schema, endpoint, "
            "latency_ms, prompt_tokens, completion_tokens, cached, valid, repairs, attempts, error, finish_reason, model")
N_LLM_COLS = LLM_COLS.count(",") + 1


class RunStore:
    """Append-mostly store for one run; ``flush()`` writes the buffered rows."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:  # another process (an agent group) reading the driver's store
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False)
        else:
            self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        self._actions: list[tuple] = []
        self._calls: list[tuple] = []

    def _migrate(self) -> None:
        """Add the columns newer versions record to a run folder written by an older one."""
        for table, column in (("llm_calls", "finish_reason"), ("llm_calls", "model"), ("actions", "seq"), ("actions", "calls"),
                              ("ratings", "reason")):
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {'INTEGER' if column == 'seq' else 'TEXT'}")

    # -- buffered writes (hot path) --
    def add_llm_call(self, row: tuple) -> None:
        self._calls.append(row)

    def add_rows(self, actions: Iterable[tuple], calls: Iterable[tuple]) -> None:
        self._actions.extend(actions)
        self._calls.extend(calls)

    def flush(self, embeddings: list[tuple[str, bytes]] | None = None) -> None:
        if not (self._actions or self._calls or embeddings):
            return
        with self.db:
            self.db.execute("BEGIN")
            if self._actions:
                self.db.executemany(f"INSERT INTO actions ({ACTION_COLS}) VALUES (?,?,?,?,?,?,?,?)", self._actions)
            if self._calls:
                self.db.executemany(f"INSERT INTO llm_calls ({LLM_COLS}) VALUES ({','.join('?' * N_LLM_COLS)})", self._calls)
            if embeddings:
                self.db.executemany("INSERT OR IGNORE INTO embeddings (key, vec) VALUES (?, ?)", embeddings)
        self._actions.clear()
        self._calls.clear()

    # -- direct writes --
    def add_check_results(self, round_: int, phase: str, results: list[Any]) -> None:
        """Check results (``CheckResult``), each linked to its action and the action's LLM calls."""
        if not results:
            return
        with self.db:
            self.db.executemany(
                "INSERT INTO checks (round, phase, agent_id, act_seq, action, check_name, ok, reason, rewrite, calls) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(round_, phase, r.action.agent_id, r.action.seq, r.action.action, r.check, int(r.ok), r.reason or None,
                  r.rewrite, json.dumps(list(r.action.calls)) if r.action.calls else None) for r in results])

    def profile(self, agent_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT profile FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            raise KeyError(f"no agent '{agent_id}' in this run")
        return json.loads(row[0])

    def attribute_changes(self, agent_id: str) -> list[tuple[str, Any]]:
        """``(path, value)`` of the attribute interventions made to one agent, in order."""
        return [(d["path"], d["value"]) for (d,) in ((json.loads(x),) for (x,) in self.db.execute(
            "SELECT data FROM interventions WHERE kind = 'attribute' AND target = ? ORDER BY id", (agent_id,)))]

    def agent_actions(self, agent_id: str, action: str, skip: tuple[int, str] | None = None) -> list[tuple]:
        """``(round, phase, action, valid, data, seq, calls)`` of one agent's actions of one name, oldest
        first; ``skip=(round, phase)`` leaves out that phase's (the one being checked)."""
        self.flush()
        r, ph = skip or (-1, "")
        return list(self.db.execute("SELECT round, phase, action, valid, data, seq, calls FROM actions "
                                    "WHERE agent_id = ? AND action = ? AND NOT (round = ? AND phase = ?) ORDER BY id",
                                    (agent_id, action, r, ph)))

    def set_meta(self, **kv: Any) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in kv.items()])

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def add_agents(self, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """``(agent_id, agent_type, profile JSON, group index)`` rows."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO agents (agent_id, agent_type, profile, grp) VALUES (?,?,?,?)", rows)

    def set_metrics(self, round_: int, metrics: dict[str, float]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO metrics (round, name, value) VALUES (?,?,?)",
                                [(round_, k, float(v)) for k, v in metrics.items()])

    def set_round_cost(self, round_: int, wall_s: float) -> dict[str, float]:
        """Record what round ``round_`` cost: its wall time, and its LLM calls and tokens as recorded
        (kept apart from the metrics, which a replay or a resume must reproduce exactly)."""
        self.flush()
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
            "COALESCE(SUM(cached),0), COALESCE(SUM(error IS NOT NULL),0) FROM llm_calls WHERE round = ?",
            (round_,)).fetchone()
        cost = {"wall_s": round(wall_s, 3), "llm_calls": row[0], "prompt_tokens": row[1], "completion_tokens": row[2],
                "replayed_calls": row[3], "failed_calls": row[4]}
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO round_costs (round, wall_s, llm_calls, prompt_tokens, "
                            "completion_tokens, replayed_calls, failed_calls) VALUES (?,?,?,?,?,?,?)",
                            (round_, *cost.values()))
        return cost

    def add_intervention(self, round_: int, kind: str, target: str, data: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("INSERT INTO interventions (round, kind, target, data) VALUES (?,?,?,?)",
                            (round_, kind, target, json.dumps(data)))

    def truncate_after(self, round_: int) -> None:
        """Forget everything recorded after ``round_`` (a resume re-runs those rounds)."""
        self._actions.clear()
        self._calls.clear()
        with self.db:
            for table in ("actions", "llm_calls", "metrics", "interventions", "checks", "round_costs"):
                self.db.execute(f"DELETE FROM {table} WHERE round > ?", (round_,))

    # -- reads --
    def response_cache(self, round_: int | None = None, agents: set[str] | None = None) -> dict[str, CachedAnswer]:
        """Recorded answers by request key, failed structured answers included (a replay fails
        there too). ``round_`` and ``agents`` narrow it to one round and a set of callers."""
        q = ("SELECT key, completion, prompt_tokens, completion_tokens, error, repairs, finish_reason, agent_id, model "
             "FROM llm_calls WHERE (error IS NULL OR error LIKE 'StructuredOutputError%')")
        args: tuple = ()
        if round_ is not None:
            q += " AND round = ?"
            args = (round_,)
        return {k: CachedAnswer(c or "", p or 0, t or 0, e.removeprefix("StructuredOutputError: ") if e else None,
                                r or 0, f, m)
                for k, c, p, t, e, r, f, a, m in self.db.execute(q, args) if agents is None or a in agents}

    def embeddings(self) -> dict[str, bytes]:
        return dict(self.db.execute("SELECT key, vec FROM embeddings"))

    def actions(self, round_: int | None = None) -> list[dict[str, Any]]:
        q = f"SELECT {ACTION_COLS} FROM actions"
        args: tuple = ()
        if round_ is not None:
            q += " WHERE round = ?"
            args = (round_,)
        cols = [c.strip() for c in ACTION_COLS.split(",")]
        return [dict(zip(cols, r, strict=True)) for r in self.db.execute(q + " ORDER BY id", args)]

    def metrics(self) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for r, n, v in self.db.execute("SELECT round, name, value FROM metrics ORDER BY round, name"):
            out.setdefault(r, {})[n] = v
        return out

    def llm_totals(self) -> dict[str, int]:
        """Calls and tokens over the whole run (also right after a resume, unlike in-process counters)."""
        self.flush()
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
            "COALESCE(SUM(cached),0), COALESCE(SUM(error IS NOT NULL),0), COALESCE(SUM(valid = 0),0), "
            "COALESCE(SUM(finish_reason = 'length'),0) FROM llm_calls").fetchone()
        return {"llm_calls": row[0], "tokens": row[1] + row[2], "prompt_tokens": row[1], "completion_tokens": row[2],
                "llm_calls_from_replay": row[3], "llm_call_errors": row[4], "invalid_calls": row[5],
                "truncated_calls": row[6]}

    def invalid_actions(self) -> dict[str, int]:
        """Actions recorded as invalid (no valid model answer, or inconsistent), per action name."""
        self.flush()
        return dict(self.db.execute("SELECT action, COUNT(*) FROM actions WHERE valid = 0 GROUP BY action ORDER BY action"))

    def count(self, table: str, where: str = "") -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM {table} {where}").fetchone()[0]

    def close(self) -> None:
        self.flush()
        self.db.close()
