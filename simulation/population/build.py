"""Turn a config's population section into agent ids and profiles."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ImportedProfiles:
    """What a scenario's importer read from a profile file.

    ``ignored`` names the file's fields that no prompt or rule uses, and ``assumed`` says what the
    importer filled in that the file does not hold; both are printed when a run starts, so nothing
    is dropped or invented silently.
    """

    profiles: list[dict[str, Any]]
    ignored: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileSource:
    """Where one agent type's profiles come from: a file (all of it or a seeded draw), and generation."""

    agent_type: str
    count: int
    file: str | None = None
    in_file: int = 0
    taken: int = 0
    generated: int = 0
    ignored: tuple[str, ...] = ()
    assumed: tuple[str, ...] = field(default_factory=tuple)

    def line(self) -> str:
        """One line for the start of a run and for ``gensim check``."""
        if self.file is None:
            return f"{self.agent_type}: {self.count:,} generated"
        name = Path(self.file).name
        how = "all" if self.taken == self.in_file else "a seeded draw, in file order"
        text = f"{self.agent_type}: {self.in_file:,} profiles in {name}, {self.taken:,} taken ({how}), " \
               f"{self.generated:,} generated"
        if self.ignored:
            text += f"; not used by any prompt: {', '.join(self.ignored)}"
        if self.assumed:
            text += f"; assumed: {'; '.join(self.assumed)}"
        return text


def read_imported(spec: Any, agent_type: str, path: Path) -> ImportedProfiles:
    """Run the scenario's importer (a list of profiles or an :class:`ImportedProfiles`)."""
    importer = spec.importers.get(agent_type)
    if importer is None:
        raise ValueError(f"scenario '{spec.name}' cannot import profiles for '{agent_type}'")
    got = importer(path)
    return got if isinstance(got, ImportedProfiles) else ImportedProfiles(list(got))


def pick_imported(n_file: int, count: int, seed: int, agent_type: str) -> list[int]:
    """Which file entries a type takes: all of them when the count allows, else a seeded draw of
    ``count`` entries kept in file order (not the first N: files are often sorted)."""
    if count >= n_file:
        return list(range(n_file))
    return sorted(random.Random(f"profiles:{seed}:{agent_type}").sample(range(n_file), count))


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


def agent_id(agent_type: str, index: int, count: int, digits: int | None = None) -> str:
    """The id of agent ``index`` of a type with ``count`` agents: ``seeker-0042``.

    ``digits`` (``simulation.id_digits``) fixes the width, so an id does not depend on ``count``;
    by default the index is padded to the widest index of the type.
    """
    width = digits if digits is not None else max(1, len(str(max(count - 1, 0))))
    return f"{agent_type}-{index:0{width}d}"


def agent_ids(agent_type: str, count: int, digits: int | None = None) -> Iterator[str]:
    """Every id of a type, in index order."""
    return (agent_id(agent_type, i, count, digits) for i in range(count))


def profile_sources(spec: Any, counts: dict[str, int], profile_files: dict[str, str | None],
                    seed: int) -> tuple[dict[str, ProfileSource], dict[str, list[dict[str, Any]]]]:
    """Per type, where its profiles come from, and the imported profiles it takes."""
    sources, taken = {}, {}
    for agent_type, count in counts.items():
        path = profile_files.get(agent_type)
        if not path:
            sources[agent_type], taken[agent_type] = ProfileSource(agent_type, count, generated=count), []
            continue
        got = read_imported(spec, agent_type, Path(path))
        rows = [got.profiles[i] for i in pick_imported(len(got.profiles), count, seed, agent_type)]
        taken[agent_type] = rows
        sources[agent_type] = ProfileSource(agent_type, count, path, len(got.profiles), len(rows),
                                            count - len(rows), got.ignored, got.assumed)
    return sources, taken


def build_profiles(spec: Any, counts: dict[str, int], profile_files: dict[str, str | None],
                   seed: int, digits: int | None = None) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
    """Per type, a lazy stream of ``(agent_id, profile)``: imported profiles first (see
    :func:`pick_imported`), then generated ones."""
    return profile_streams(spec, counts, profile_sources(spec, counts, profile_files, seed)[1], seed, digits)


def profile_streams(spec: Any, counts: dict[str, int], taken: dict[str, list[dict[str, Any]]], seed: int,
                    digits: int | None = None) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
    """:func:`build_profiles` from imported profiles already read (``profile_sources``'s second part)."""
    out: dict[str, Iterator[tuple[str, dict[str, Any]]]] = {}
    for agent_type, count in counts.items():
        imported = taken[agent_type]
        gen = spec.generators.get(agent_type)
        if count > len(imported) and gen is None:
            raise ValueError(f"'{agent_type}': {count} agents wanted, {len(imported)} profiles and no generator")

        def stream(agent_type=agent_type, count=count, imported=imported, gen=gen):
            for i, aid in enumerate(agent_ids(agent_type, count, digits)):
                # a copy: an agent's profile changes (--set) must not reach the profiles read later
                yield aid, (copy.deepcopy(imported[i]) if i < len(imported) else gen(seed, i))

        out[agent_type] = stream()
    return out
