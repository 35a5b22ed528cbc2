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
    got = import_seekers(CFG / "SeekerAgent_configs.json")
    s = got.profiles
    assert s[0]["name"] == "Sophia Chen" and s[0]["traits"]["risk_tolerance"] == "Low" and s[0]["age"] == 32
    assert s[0]["gender"] == "Female" and all("desired_salary" not in p for p in s)  # none stated, none invented
    assert any("no desired salary" in a for a in got.assumed)
    jobs = import_jobs(CFG / "InterviewerAgent_configs.json")
    j = jobs.profiles
    assert j[0]["title"] == "Data Analyst" and j[0]["location"].startswith("Stockholm")
    # the company text is kept whole, not cut at its first comma
    assert j[0]["company"] == "Spotify Technology S.A." and j[0]["company_about"].endswith("a digital music service.")


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


def test_imported_profiles_reach_prompts_and_a_seeded_draw_is_taken(tmp_path, capsys):
    """GenSim files: gender, job descriptions, benefits and company text reach prompts; no salary is
    invented; an unused field is listed; a smaller count takes a seeded draw, not the first N."""
    import json
    import sqlite3

    from simulation.cli import main
    from tests.conftest import copy_scenario

    folder = copy_scenario(tmp_path, "job_seeking")
    seekers = [{"class": "SeekerAgent", "args": {
        "name": f"Seeker {i}", "cv": {"Education": "BA", "Work Experience": [], "Skills": ["Excel"]},
        "trait": {"Age": 20 + i, "Gender": ["Female", "Male"][i % 2], "Patience": "High", "Hobby": "chess"}}}
        for i in range(30)]
    jobs = [{"class": "InterviewerAgent", "args": {
        "name": f"Clerk {i}", "jd": f"File the ledgers of branch {i}.", "jr": ["BA"],
        "company": f"Bank {i}, a lender since 1900", "salary": "USD 50,000 - 60,000 annually",
        "benefits": [f"Perk {i}"], "location": "Oslo"}} for i in range(4)]
    (folder / "configs" / "s.json").write_text(json.dumps(seekers))
    (folder / "configs" / "j.json").write_text(json.dumps(jobs))
    args = ["agents.seeker.profiles=s.json", "agents.interviewer.profiles=j.json", "agents.seeker.count=10",
            "agents.interviewer.count=4", "--llm", "fake", "--rounds", "1", "--no-progress"]
    assert main(["check", str(folder), "agents.seeker.profiles=s.json", "agents.seeker.count=10"]) == 0
    assert "seeker: 30 profiles in s.json, 10 taken (a seeded draw, in file order), 0 generated" in capsys.readouterr().out
    names = []
    for i in (1, 2):
        run = tmp_path / f"run{i}"
        assert main(["run", str(folder), *args, "--out", str(run)]) == 0
        out = capsys.readouterr().out
        assert "not used by any prompt: trait.Hobby" in out
        # with --no-progress too: the population's statistics, and the fields they leave out, named
        assert "population  seeker: 10 agents" in out and "not summarised (free text, lists or one value each)" in out
        with sqlite3.connect(run / "run.sqlite") as db:
            profiles = {a: json.loads(p) for a, p in db.execute("SELECT agent_id, profile FROM agents")}
            prompts = [p for (p,) in db.execute("SELECT prompt FROM llm_calls")]
            applying = [p for (p,) in db.execute("SELECT prompt FROM llm_calls WHERE action = 'apply_posting'")]
        names.append(sorted(p["name"] for a, p in profiles.items() if a.startswith("seeker")))
    assert names[0] == names[1] and names[0] != [f"Seeker {i}" for i in range(10)]
    text = "\n".join(prompts)
    for a, p in profiles.items():
        if a.startswith("seeker"):
            assert f"You are {p['name']}, a job seeker ({p['gender']})" in text
    assert "want about USD" not in text
    seen_by_seekers = "\n".join(applying)  # what a seeker reads when choosing where to apply
    assert "File the ledgers of branch" in seen_by_seekers and "Benefits: Perk" in seen_by_seekers
    assert "a lender since 1900" in text  # the interviewer's own company text


def test_a_run_reads_each_profile_file_once_and_hands_out_copies(tmp_path, monkeypatch):
    """Setup's report, the agents and ``sim.profiles()`` (job seeking's setup calls it per type) share
    one read of each file; each gets its own copy of a profile, so changing one changes no other."""
    import json

    import simulation.population.build as build
    from simulation.cli import main
    from tests.conftest import copy_scenario

    folder = copy_scenario(tmp_path, "job_seeking")
    jobs = [{"class": "InterviewerAgent", "args": {
        "name": f"Clerk {i}", "jd": f"File the ledgers of branch {i}.", "jr": ["BA"], "company": f"Bank {i}",
        "salary": "USD 50,000 - 60,000 annually", "benefits": [], "location": "Oslo"}} for i in range(4)]
    (folder / "configs" / "j.json").write_text(json.dumps(jobs))
    reads: list[str] = []
    real = build.read_imported

    def counted(spec, agent_type, path):
        reads.append(path.name)
        return real(spec, agent_type, path)

    monkeypatch.setattr(build, "read_imported", counted)
    assert main(["run", str(folder), "agents.interviewer.profiles=j.json", "agents.interviewer.count=4",
                 "--llm", "fake", "--rounds", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert reads == ["j.json"]

    spec = type("Spec", (), {"generators": {}})()
    taken = {"t": [{"traits": {"trust": "Low"}}]}  # one read, streamed twice
    _, first = next(build.profile_streams(spec, {"t": 1}, taken, 1)["t"])
    first["traits"]["trust"] = "High"  # as --set does to an agent's profile
    _, again = next(build.profile_streams(spec, {"t": 1}, taken, 1)["t"])
    assert again["traits"]["trust"] == "Low" and taken["t"][0]["traits"]["trust"] == "Low"


def test_generated_names_fit_the_generated_gender():
    from simulation.population.synth import FIRST_BY_GENDER, person

    people = [person("voter", 7, i)[0] for i in range(3000)]
    assert {p["gender"] for p in people} == set(FIRST_BY_GENDER)
    for p in people:
        assert p["name"].split()[0] in FIRST_BY_GENDER[p["gender"]], p
    assert len({(p["name"], p["age"], p["gender"]) for p in people}) == len(people), "still unique"
