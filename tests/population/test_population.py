"""Population: unique, seeded profiles; proportional scaling; GenSim-format import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulation.examples.job_seeking.population import (
    generate_job,
    generate_seeker,
    import_jobs,
    import_seekers,
)
from simulation.population import scale_counts

CFG = Path(__file__).resolve().parents[2] / "simulation" / "examples" / "job_seeking" / "configs"


def test_profiles_are_unique_and_seeded():
    seekers = [json.dumps(generate_seeker(7, i), sort_keys=True) for i in range(20000)]
    assert len(set(seekers)) == len(seekers)
    assert generate_seeker(7, 123) == generate_seeker(7, 123) != generate_seeker(8, 123)
    jobs = [json.dumps(generate_job(7, i), sort_keys=True) for i in range(5000)]
    assert len(set(jobs)) == len(jobs)


def test_profile_space_reaches_a_million():
    p = generate_seeker(1, 999_999)
    assert p["name"] and set(p["traits"]) == {"patience", "risk_tolerance", "positive_reciprocity",
                                              "negative_reciprocity", "altruism", "trust"}
    assert generate_job(1, 999_999)["title"]


def test_scale_counts_keeps_proportions():
    assert scale_counts({"seeker": 16, "interviewer": 4}, 100) == {"seeker": 80, "interviewer": 20}
    assert sum(scale_counts({"a": 3, "b": 1}, 7).values()) == 7
    assert scale_counts({"a": 1000, "b": 1}, 2) == {"a": 1, "b": 1}


def test_gensim_importers():
    s = import_seekers(CFG / "SeekerAgent_configs.json")
    assert s[0]["name"] == "Sophia Chen" and s[0]["traits"]["risk_tolerance"] == "Low" and s[0]["age"] == 32
    j = import_jobs(CFG / "InterviewerAgent_configs.json")
    assert j[0]["title"] == "Data Analyst" and j[0]["location"].startswith("Stockholm")


def test_person_synthesis_is_unique_seeded_and_reaches_a_million():
    from simulation.population import person

    people = [json.dumps(person("x", 3, i)[0], sort_keys=True) for i in range(30000)]
    assert len(set(people)) == len(people)
    assert person("x", 3, 5) == person("x", 3, 5) and person("x", 3, 5)[0] != person("x", 4, 5)[0]
    p, extra = person("x", 3, 999_999, [7])
    assert p["name"] and 18 <= p["age"] <= 77 and len(extra) == 1 and 0 <= extra[0] < 7


def test_unique_space_is_a_permutation():
    from simulation.population import UniqueSpace

    space = UniqueSpace([3, 4, 5], salt=9)
    combos = {tuple(space.combo(i)) for i in range(space.size)}
    assert len(combos) == 60
    with pytest.raises(ValueError, match="outside the unique space"):
        space.combo(60)


def test_population_stats_summarise_what_streams_past():
    from simulation.population import PopulationStats

    st = PopulationStats()
    for i in range(10):
        st.add("seeker", {"name": f"n{i}", "age": 20 + i, "gender": "F" if i % 2 else "M"})
    st.add("seeker", {"name": "n0", "age": 20, "gender": "M"})  # a duplicate of the first
    s = st.summary()["seeker"]
    assert s["count"] == 11 and s["unique"] == 10 and s["age"] == {"min": 20, "max": 29, "mean": 24.09}
    assert s["gender"] == {"M": 6, "F": 5}
    assert st.lines()[0].startswith("seeker: 11 agents, 10 unique")


def test_small_world_graph():
    from simulation.population.graph import small_world

    ids = [f"u{i}" for i in range(200)]
    g = small_world(ids, 4, 0.1, seed=5)
    assert g == small_world(ids, 4, 0.1, seed=5) != small_world(ids, 4, 0.1, seed=6)
    assert all(a not in g[a] and len(set(g[a])) == len(g[a]) for a in ids)
    assert all(a in g[b] for a in ids for b in g[a]), "undirected"
    assert sum(len(v) for v in g.values()) / len(ids) == pytest.approx(4, abs=0.2)
    ring = small_world(ids, 4, 0.0, seed=5)
    assert ring["u0"] == ["u1", "u2", "u198", "u199"]
