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
from dataclasses import dataclass, field
from typing import Any

SKEW = 0.9
MIN_AGENTS = 20


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
    rows = store.db.execute("SELECT action, agent_id, choices, completion, valid FROM llm_calls "
                            "WHERE round = ? AND choices IS NOT NULL AND action NOT LIKE 'memory.%'", (round_,))
    by_action: dict[str, list[tuple[str, list[str], str, int]]] = defaultdict(list)
    for action, agent, choices, completion, valid in rows:
        by_action[action].append((agent, json.loads(choices), completion, valid))
    out = Health()
    for action, calls in sorted(by_action.items()):
        answers = [(c, opts) for _, opts, c, v in calls if v]
        counts = Counter(c for c, _ in answers)
        n_valid = len(answers)
        m = out.metrics
        m[f"decision.{action}.n"] = float(len(calls))
        m[f"decision.{action}.invalid_share"] = round(1 - n_valid / len(calls), 6)
        if not n_valid:
            continue
        shares = {o: k / n_valid for o, k in counts.items()}
        for option, share in sorted(shares.items()):
            m[f"decision.{action}.share.{option}"] = round(share, 6)
        m[f"decision.{action}.entropy"] = round(-sum(p * math.log2(p) for p in shares.values()), 6)
        first = sum(1 for c, opts in answers if opts and c == opts[0]) / n_valid
        m[f"decision.{action}.first_share"] = round(first, 6)
        top, top_share = max(shares.items(), key=lambda kv: (kv[1], kv[0]))
        agents = len({a for a, _, _, v in calls if v})
        if top_share > SKEW and agents >= MIN_AGENTS:
            out.skewed.append(f"decision '{action}': '{top}' took {counts[top]} of {n_valid} answers "
                              f"({top_share:.0%}) from {agents} agents; the option listed first took {first:.0%}")
    return out
