"""Population: unique, seeded profiles; proportional scaling; GenSim-format import."""

from __future__ import annotations

import json
from pathlib import Path

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
