"""Which saved step of a training the loop keeps (``--pick anchors``).

The training agents' calls no check grades are trained toward the base model's order-averaged
preference (anchor rows). Run A39's snapshots showed those calls swinging from step to step (offers'
ungraded drift 0.07, 0.25, 0.06, 0.73, 0.07 over steps 100-200 on the exam), and the training agents'
own anchored calls swinging with them (0.11, 0.22, 0.07, 0.78, 0.03). So the loop can choose, among
the snapshots of the second half and the finished adapter, the one whose picks on those anchored
calls stay closest to the base's, before any fork or exam: the held-out agents stay unseen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..training.manifest import read_manifest, snapshot_step, snapshots
from . import exam as ex

Probs = dict[str, float]


@dataclass(frozen=True)
class Candidate:
    """One saved step scored on the anchored calls: its per-decision drift from the base's picks."""

    step: int
    folder: str  # relative to the loop folder (the adapter's parent): a moved loop keeps its pick
    drift: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.drift.values(), default=0.0)


@dataclass(frozen=True)
class Pick:
    """What ``--pick anchors`` chose and why (``pick-N.json`` in the loop folder)."""

    chosen: Candidate
    candidates: list[Candidate]
    calls: int

    def line(self) -> str:
        scored = "; ".join(f"step {c.step} {c.worst:.2f}" for c in self.candidates)
        return (f"picked step {self.chosen.step} (worst anchor drift {self.chosen.worst:.2f} on {self.calls} training "
                f"calls no check grades; {scored})")


def anchor_calls(data: Path, scope: frozenset[str] | None = None) -> tuple[list[ex.ExamItem], list[Probs]]:
    """The anchored calls of ``data`` (a loop's ``data-N.jsonl``), one item per call in file order,
    and the base's order-averaged preference each row trains toward (``meta.target``; its pick is the
    base's whatever ``--anchor-power`` sharpened). Only decisions in ``scope`` when given."""
    items: dict[int, ex.ExamItem] = {}
    targets: dict[int, Probs] = {}
    with Path(data).open(encoding="utf-8") as fh:
        for text in fh:
            row = json.loads(text)
            meta = row["meta"]
            call = meta["call_id"]
            if not meta.get("anchored") or not meta.get("target") or call in items:
                continue
            if scope is not None and meta["action"] not in scope:
                continue
            items[call] = ex.ExamItem(call, "", meta.get("round", 0), "", meta["action"], row["messages"][:-1],
                                      list(meta["options"]), None)
            targets[call] = meta["target"]
    return list(items.values()), [targets[c] for c in items]


def drifts(items: list[ex.ExamItem], base: list[Probs], got: list[Probs | None]) -> dict[str, float]:
    """Per decision, the total variation between the base's and ``got``'s position-free picks."""
    if any(g is None for g in got):
        raise ValueError(f"no option probabilities for {sum(g is None for g in got)} of {len(got)} anchored calls")
    out = {}
    for d in sorted({i.decision for i in items}):
        ks = [k for k, i in enumerate(items) if i.decision == d]
        out[d] = ex.total_variation(ex._shares([ex.preferred_option(base[k]) for k in ks]),
                                    ex._shares([ex.preferred_option(got[k]) for k in ks]))
    return out


def candidates(adapter: Path) -> list[tuple[int, Path]]:
    """The steps ``--pick anchors`` weighs: the snapshots from half the training on, and the finished
    adapter (its last step). Earlier ones have not yet learned the checked decisions (run A39: screening
    88% at step 100, 100% from step 125 of 200)."""
    last = len(read_manifest(adapter, "adapter").losses)
    kept = [(snapshot_step(s), s) for s in snapshots(adapter) if 2 * snapshot_step(s) >= last and snapshot_step(s) < last]
    return [*kept, (last, Path(adapter))]


def choose(scored: list[Candidate]) -> Candidate:
    """The candidate with the least worst drift; on a tie the later step (more trained)."""
    return min(scored, key=lambda c: (c.worst, -c.step))


def pick(adapter: Path, data: Path, scope: frozenset[str] | None,
         score: Callable[[Path, str, list[ex.ExamItem]], list[Probs | None]]) -> Pick:
    """Score every candidate of ``adapter`` on ``data``'s anchored calls with ``score(folder, name,
    items)`` (the folder served as ``name``, its order-averaged probabilities) and choose one."""
    items, base = anchor_calls(data, scope)
    if not items:
        raise ValueError(f"{data}: no anchored rows with the base's probabilities to pick a step by")
    scored = []
    for step, folder in candidates(adapter):
        got = score(folder, f"{Path(adapter).name}-step-{step}", items)
        scored.append(Candidate(step, str(Path(folder).relative_to(Path(adapter).parent)), drifts(items, base, got)))
    return Pick(choose(scored), scored, len(items))


def write_pick(path: Path, got: Pick) -> None:
    path.write_text(json.dumps(asdict(got), indent=2))


def read_pick(path: Path) -> Pick | None:
    """The pick recorded in ``path`` (a loop's ``pick-N.json``); None when there is none."""
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Pick(Candidate(**raw["chosen"]), [Candidate(**c) for c in raw["candidates"]], raw["calls"])
