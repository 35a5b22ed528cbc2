"""Interventions scheduled for a run: the command line's, and the ones a recorded run made.

A run records the schedule it was started with (``meta.schedule``) and every intervention it
applied (the ``interventions`` table). A resume continues the recorded schedule; a replay or a
fork repeats what the recorded run applied, so their prompts are the recorded ones. A replay
given a schedule other than the recorded one is refused: it could not be answered from the
recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .config import ConfigError, ConfigProblem
from .store import RunStore

KINDS = ("global", "attribute")  # what a schedule repeats; deployments have a hook of their own


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One intervention: before ``round``, a global text (``target`` '*') or an agent's attribute."""

    round: int
    kind: str  # "global" | "attribute"
    target: str  # "*" for global, else the agent id
    text: str | None = None  # global: the text (None clears it)
    path: str | None = None  # attribute: the dotted profile field ...
    value: Any = None  # ... and its new value

    def label(self) -> str:
        """``2:news text`` or ``2:seeker-03:traits.trust="Low"`` (as the command line writes it)."""
        if self.kind == "global":
            return f"--intervene {self.round}:{self.text or ''}"
        return f"--set {self.round}:{self.target}:{self.path}={json.dumps(self.value)}"

    def to_data(self) -> dict[str, Any]:
        """Plain data for ``meta.schedule``."""
        return asdict(self)


def from_options(interventions: Iterable[tuple[int, str | None]],
                 attributes: Iterable[tuple[int, str, str, Any]]) -> list[Scheduled]:
    """The command line's ``--intervene`` and ``--set``, in round order (stable within a round)."""
    out = [Scheduled(r, "global", "*", text=t) for r, t in interventions]
    out += [Scheduled(r, "attribute", a, path=p, value=v) for r, a, p, v in attributes]
    return sorted(out, key=lambda s: s.round)


def from_data(items: Iterable[dict[str, Any]] | None) -> list[Scheduled]:
    """A schedule read back from ``meta.schedule``."""
    return [Scheduled(**d) for d in items or ()]


def recorded(store: RunStore, from_round: int = 1) -> list[Scheduled]:
    """The global and attribute interventions a run applied, from ``from_round`` on, in order."""
    out = []
    for r, kind, target, data in store.db.execute(
            "SELECT round, kind, target, data FROM interventions WHERE kind IN (?, ?) AND round >= ? ORDER BY id",
            (*KINDS, from_round)):
        d = json.loads(data)
        if kind == "global":
            out.append(Scheduled(r, kind, target, text=d.get("text")))
        else:
            out.append(Scheduled(r, kind, target, path=d["path"], value=d["value"]))
    return out


def check_same(given: list[Scheduled], recorded_: list[Scheduled], what: str) -> None:
    """Refuse a command-line schedule that differs from the recorded one, naming the differences."""
    if not given or sorted(given, key=repr) == sorted(recorded_, key=repr):
        return
    extra = [s.label() for s in given if s not in recorded_]
    missing = [s.label() for s in recorded_ if s not in given]
    parts = ([f"not recorded: {'; '.join(extra)}"] if extra else []) + \
        ([f"recorded but not given: {'; '.join(missing)}"] if missing else [])
    raise ConfigError([ConfigProblem("<command line>", "--intervene/--set", (
        f"{what} repeats the recorded interventions by itself; these differ ({', '.join(parts)}): "
        f"leave the flags out, or fork the run to change them"))])


def hook(schedule: list[Scheduled]) -> Any:
    """A before-round hook applying ``schedule`` in its rounds (each change is recorded by the simulator)."""

    async def before_round(sim: Any, r: int) -> None:
        for s in schedule:
            if s.round != r:
                continue
            if s.kind == "global":
                sim.set_intervention(s.text)
            else:
                await sim.set_attribute(s.target, s.path, s.value)

    return before_round


_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list",
               dict: "an object"}


def _kind(v: Any) -> type | None:
    for t in (bool, int, float, str, list, dict):  # bool before int: True is an int to Python
        if isinstance(v, t):
            return t
    return None


def attribute_problem(profile: dict[str, Any], path: str, value: Any) -> str | None:
    """Why ``--set`` cannot put ``value`` at ``path`` of ``profile`` (None: it can).

    The field must exist (a typo would add a field no prompt reads) and the value must have the
    type the field has (``age=old`` would reach prompts and checks as text).
    """
    cur: Any = profile
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(cur, dict) or part not in cur:
            at = ".".join(parts[:i]) or "the profile"
            have = ", ".join(sorted(cur)) if isinstance(cur, dict) else type(cur).__name__
            return f"{at} has no field '{part}' (it has: {have})"
        cur = cur[part]
    want, got = _kind(cur), _kind(value)
    if cur is None or want is None or want is got or (want is float and got is int):
        return None
    return f"'{path}' is {_KIND_NAMES[want]} (now {json.dumps(cur)}), got {json.dumps(value)}"


def parse_intervention(arg: str) -> tuple[int, str | None]:
    """``ROUND:TEXT`` (an empty TEXT clears the intervention)."""
    r, sep, text = arg.partition(":")
    if not sep or not r.strip().isdigit() or int(r) < 1:
        raise ConfigError([ConfigProblem("<command line>", "--intervene", f"expected ROUND:TEXT, got {arg!r}")])
    return int(r), text.strip() or None


def parse_attribute(arg: str) -> tuple[int, str, str, Any]:
    """``ROUND:AGENT:PATH=VALUE`` (VALUE is JSON when it parses as JSON, else a string)."""
    parts = arg.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) < 1 or "=" not in parts[2]:
        raise ConfigError([ConfigProblem("<command line>", "--set", f"expected ROUND:AGENT:PATH=VALUE, got {arg!r}")])
    path, _, raw = parts[2].partition("=")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return int(parts[0]), parts[1], path.strip(), value
