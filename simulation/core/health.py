"""Decision health: how each ``choose`` decision of a round was spread over its options.

For every decision (the action name of a ``choose`` call) the round's metrics get the number of
calls, the share with no valid answer, the share of each option, the entropy of that spread (bits),
and the share of answers that took the option listed first (position bias: with
``llm.shuffle_options`` the listed order varies per call, so option and position bias separate).
A decision where one option takes more than ``SKEW`` of the answers of at least ``MIN_AGENTS``
agents is reported: the run prints a warning and the summary lists it.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

SKEW = 0.9
# an option the right answers (or, where no check grades a decision, the base's position-free preference)
# give for this share of the calls justifies a decision above SKEW on it (the correction guard)
JUSTIFIED = 0.7
MIN_AGENTS = 20


@dataclass
class Spread:
    """How one decision's calls fell over its options."""

    calls: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # option -> valid answers
    first: int = 0  # valid answers that took the option listed first
    agents: set[str] = field(default_factory=set)  # agents with a valid answer

    @property
    def valid(self) -> int:
        """Calls with a valid answer."""
        return sum(self.counts.values())

    def shares(self) -> dict[str, float]:
        """Each option's share of the valid answers."""
        n = self.valid
        return {o: k / n for o, k in self.counts.items()} if n else {}

    def top(self) -> tuple[str, float]:
        """The option with the largest share (ties: the greater name), and its share."""
        return max(self.shares().items(), key=lambda kv: (kv[1], kv[0]), default=("", 0.0))


def decision_spreads(rows: Iterable[tuple[str, str, str, str, int]],
                     agents: Container[str] | None = None) -> dict[str, Spread]:
    """Per decision, the spread of recorded ``choose`` calls.

    ``rows`` are (action, agent_id, choices JSON, completion, valid); only ``agents``' calls count when given.
    """
    out: dict[str, Spread] = defaultdict(Spread)
    for action, agent, choices, completion, valid in rows:
        if agents is not None and agent not in agents:
            continue
        s = out[action]
        s.calls += 1
        if valid:
            opts = json.loads(choices)
            s.counts[completion] += 1
            s.first += bool(opts) and completion == opts[0]
            s.agents.add(agent)
    return dict(sorted(out.items()))


CHOOSE_CALLS = ("SELECT action, agent_id, choices, completion, valid FROM llm_calls "
                "WHERE choices IS NOT NULL AND action NOT LIKE 'memory.%'")


@dataclass
class Health:
    """A round's decision metrics, and one line per skewed decision."""

    metrics: dict[str, float] = field(default_factory=dict)
    skewed: list[str] = field(default_factory=list)


def decision_health(store: Any, round_: int) -> Health:
    """Compute the round's decision health from its recorded ``choose`` calls.

    Framework memory bookkeeping (``memory.*``) is left out.
    """
    store.flush()
    out = Health()
    m = out.metrics
    for action, s in decision_spreads(store.db.execute(CHOOSE_CALLS + " AND round = ?", (round_,))).items():
        m[f"decision.{action}.n"] = float(s.calls)
        m[f"decision.{action}.invalid_share"] = round(1 - s.valid / s.calls, 6)
        if not s.valid:
            continue
        shares = s.shares()
        for option, share in sorted(shares.items()):
            m[f"decision.{action}.share.{option}"] = round(share, 6)
        m[f"decision.{action}.entropy"] = round(-sum(p * math.log2(p) for p in shares.values()), 6)
        first = s.first / s.valid
        m[f"decision.{action}.first_share"] = round(first, 6)
        top, top_share = s.top()
        if top_share > SKEW and len(s.agents) >= MIN_AGENTS:
            out.skewed.append(f"decision '{action}': '{top}' took {s.counts[top]} of {s.valid} answers "
                              f"({top_share:.0%}) from {len(s.agents)} agents; the option listed first took {first:.0%}")
    return out
