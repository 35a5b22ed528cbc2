"""Turn a config's population section into agent ids and profiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def scale_counts(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` agents over types in the configured proportions (largest remainder, >=1 each)."""
    base = sum(counts.values())
    if base <= 0 or total < 0:
        raise ValueError("cannot scale an empty population")
    types = [t for t, c in counts.items() if c > 0]
    if total < len(types):
        raise ValueError(f"--agents must be at least {len(types)} (one per agent type)")
    exact = {t: total * counts[t] / base for t in types}
    out = {t: max(1, int(exact[t])) for t in types}
    rest = total - sum(out.values())
    for t in sorted(types, key=lambda t: exact[t] - int(exact[t]), reverse=True):
        if rest <= 0:
            break
        out[t] += 1
        rest -= 1
    while rest < 0:  # the >=1 floor overshot: take back from the largest
        t = max(out, key=out.get)
        out[t] -= 1
        rest += 1
    return {t: out.get(t, 0) for t in counts}


def agent_id(agent_type: str, index: int, count: int) -> str:
    """The id of agent ``index`` of a type with ``count`` agents: ``seeker-0042``."""
    return f"{agent_type}-{index:0{max(1, len(str(max(count - 1, 0))))}d}"


def agent_ids(agent_type: str, count: int) -> Iterator[str]:
    return (agent_id(agent_type, i, count) for i in range(count))


def build_profiles(spec: Any, counts: dict[str, int], profile_files: dict[str, str | None],
                   seed: int) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
    """Per type, a lazy stream of ``(agent_id, profile)``: imported profiles first, then generated."""
    out: dict[str, Iterator[tuple[str, dict[str, Any]]]] = {}
    for agent_type, count in counts.items():
        imported: list[dict[str, Any]] = []
        path = profile_files.get(agent_type)
        if path:
            importer = spec.importers.get(agent_type)
            if importer is None:
                raise ValueError(f"scenario '{spec.name}' cannot import profiles for '{agent_type}'")
            imported = importer(Path(path))
        gen = spec.generators.get(agent_type)
        if count > len(imported) and gen is None:
            raise ValueError(f"'{agent_type}': {count} agents wanted, {len(imported)} profiles and no generator")

        def stream(agent_type=agent_type, count=count, imported=imported, gen=gen):
            for i, aid in enumerate(agent_ids(agent_type, count)):
                yield aid, (imported[i] if i < len(imported) else gen(seed, i))

        out[agent_type] = stream()
    return out
