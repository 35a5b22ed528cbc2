"""Population synthesis shared by every scenario: seeded, unique people, and statistics on them.

Uniqueness is by construction. :class:`UniqueSpace` maps index ``i`` to a distinct tuple of
categorical choices (an affine permutation of ``i`` over a mixed-radix space); everything else in a
profile is drawn from a generator seeded by ``(seed, kind, i)``. Same seed, same population; no two
indices below ``space.size`` share a tuple.

A person (:func:`person`) has these fields, which scenario generators extend:

- ``name``: first and last name (from the unique tuple, the first name one that fits the gender; a
  numeric suffix once names run out)
- ``age``: 18 to 77, ``gender``: Female / Male / Non-binary
- ``traits``: ``patience``, ``risk_tolerance``, ``positive_reciprocity``, ``negative_reciprocity``,
  ``altruism``, ``trust``, each one of ``Very Low`` .. ``Very High``
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import Any

# first names by generated gender (the same index into each list), so a name fits its person
FIRST_BY_GENDER = {
    "Female": ["Sophia", "Ava", "Alice", "Carmen", "Ella", "Grace", "Hana", "Julia", "Lena", "Nadia", "Priya", "Rosa",
               "Tara", "Uma", "Leila", "Yara", "Amara", "Chloe", "Esther", "Gita", "Ines", "Mei", "Olga", "Rania"],
    "Male": ["Marcus", "Ethan", "Liam", "Brian", "David", "Frank", "Ivan", "Kofi", "Mateo", "Omar", "Victor", "Xavier",
             "Zane", "Bruno", "Dmitri", "Farid", "Hugo", "Jonas", "Luca", "Nils", "Pablo", "Kenji", "Tomas", "Yusuf"],
    "Non-binary": ["Quinn", "Sami", "Wen", "Alex", "Robin", "Jordan", "Casey", "Riley", "Avery", "Morgan", "Sasha",
                   "Kai", "Rowan", "Ash", "Noor", "Eden", "Jules", "Remy", "Sky", "Charlie", "Drew", "Emery", "Finley",
                   "Ari"],
}
LAST = ["Chen", "Lee", "Patel", "Rodriguez", "Johnson", "Smith", "Kim", "Jones", "White", "Garcia", "Nguyen",
        "Okafor", "Muller", "Rossi", "Silva", "Kowalski", "Novak", "Haddad", "Sato", "Ivanova", "Brown", "Dubois",
        "Hansen", "Costa", "Yilmaz", "Khan", "Singh", "Lopez", "Moreau", "Tanaka", "Ali", "Cohen", "Fischer",
        "Ortiz", "Park", "Reyes", "Schmidt", "Torres", "Wang", "Zhou", "Adeyemi", "Berg", "Cruz", "Diaz",
        "Evans", "Fontaine", "Gupta", "Horvat"]
LEVELS = ["Very Low", "Low", "Average", "High", "Very High"]
TRAITS = ["patience", "risk_tolerance", "positive_reciprocity", "negative_reciprocity", "altruism", "trust"]
GENDERS = ["Female", "Male", "Non-binary"]
N_FIRST = len(FIRST_BY_GENDER["Female"])
assert all(len(names) == N_FIRST for names in FIRST_BY_GENDER.values())


class UniqueSpace:
    """Distinct digit tuples for distinct indices below ``size`` (the product of the radices)."""

    def __init__(self, radices: list[int], salt: int = 0):
        self.radices = list(radices)
        self.size = math.prod(self.radices)
        mult = 1_000_003
        while math.gcd(mult, self.size) != 1:
            mult += 2
        self._mult = mult
        self._salt = salt

    def combo(self, index: int) -> list[int]:
        if not 0 <= index < self.size:
            raise ValueError(f"index {index} is outside the unique space of {self.size:,} profiles")
        x = (index * self._mult + self._salt) % self.size
        digits = []
        for r in self.radices:
            digits.append(x % r)
            x //= r
        return digits


def rng_for(kind: str, seed: int, index: int) -> random.Random:
    """The generator for profile ``index`` of ``kind``: independent of every other profile."""
    return random.Random(f"{kind}:{seed}:{index}")


def person(kind: str, seed: int, index: int, extra_radices: list[int] | None = None) -> tuple[dict[str, Any], list[int]]:
    """A unique person and the extra digits of its tuple (a scenario's own unique fields)."""
    space = UniqueSpace([N_FIRST, len(LAST), 60, len(GENDERS), *(extra_radices or [])], salt=seed)
    f, la, age, g, *extra = space.combo(index % space.size)
    rng = rng_for(kind, seed, index)
    name = f"{FIRST_BY_GENDER[GENDERS[g]][f]} {LAST[la]}"
    if index >= N_FIRST * len(LAST) * 60 * len(GENDERS):
        name += f" {index}"
    return {"name": name, "age": 18 + age, "gender": GENDERS[g],
            "traits": {t: rng.choice(LEVELS) for t in TRAITS}}, extra


class PopulationStats:
    """Summaries of profiles as they stream past: counts, uniqueness, numeric ranges, top categories."""

    UNIQUE_CHECK_MAX = 2_000_000

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._seen: dict[str, set[int]] = {}
        self.duplicates: Counter[str] = Counter()
        self._num: dict[tuple[str, str], list[float]] = {}
        self._cat: dict[tuple[str, str], Counter[str]] = {}
        self._other: dict[str, set[str]] = {}  # fields no summary fits: long text, lists, objects

    def add(self, agent_type: str, profile: dict[str, Any], as_json: str | None = None) -> None:
        """Count one profile (``as_json``: its JSON text, if the caller already made it)."""
        self.counts[agent_type] += 1
        seen = self._seen.setdefault(agent_type, set())
        if len(seen) < self.UNIQUE_CHECK_MAX:
            h = hash(as_json if as_json is not None else json.dumps(profile, sort_keys=True, default=str))
            if h in seen:
                self.duplicates[agent_type] += 1
            seen.add(h)
        for k, v in profile.items():
            if isinstance(v, bool):
                continue
            if isinstance(v, int | float):
                s = self._num.setdefault((agent_type, k), [math.inf, -math.inf, 0.0, 0])
                s[0], s[1], s[2], s[3] = min(s[0], v), max(s[1], v), s[2] + v, s[3] + 1
            elif isinstance(v, str) and len(v) <= 40:
                c = self._cat.setdefault((agent_type, k), Counter())
                if len(c) < 200 or v in c:
                    c[v] += 1
            else:
                self._other.setdefault(agent_type, set()).add(k)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t, n in self.counts.items():
            entry: dict[str, Any] = {"count": n, "unique": n - self.duplicates[t]}
            for (tt, k), (lo, hi, total, m) in self._num.items():
                if tt == t:  # the mean of the profiles that have the field; how many have it when not all
                    entry[k] = {"min": lo, "max": hi, "mean": round(total / m, 2)} | ({"of": m} if m < n else {})
            other = set(self._other.get(t, ()))
            for (tt, k), c in self._cat.items():
                if tt == t and len(c) < 200 and len(c) < n:  # categorical, not free text
                    entry[k] = dict(c.most_common(3)) | ({"(distinct)": len(c)} if len(c) > 3 else {})
                elif tt == t:
                    other.add(k)
            other -= set(entry)
            if other:
                entry["(not summarised)"] = sorted(other)
            out[t] = entry
        return out

    def lines(self) -> list[str]:
        lines = []
        for t, entry in self.summary().items():
            parts = [f"{entry['count']:,} agents, {entry['unique']:,} unique"]
            for k, v in entry.items():
                if k in ("count", "unique"):
                    continue
                if k == "(not summarised)":
                    parts.append(f"not summarised (free text, lists or one value each): {', '.join(v)}")
                    continue
                if "mean" in v:
                    has = f", in {v['of']:,} profiles" if "of" in v else ""
                    parts.append(f"{k} {v['min']:g}-{v['max']:g} (mean {v['mean']:g}{has})")
                else:
                    parts.append(f"{k} " + ", ".join(f"{a} {b}" for a, b in v.items()))
            lines.append(f"{t}: " + "; ".join(parts))
        return lines
