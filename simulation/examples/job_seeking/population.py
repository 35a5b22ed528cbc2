"""Seeded, unique seekers and jobs, and an importer for GenSim-format profile files.

Uniqueness is by construction (simulation.population.synth): a seeker is a unique person plus a
degree and a field (25M combinations); a job is a unique (title, seniority, company, city, team)
tuple (1.2M). Seeker fields: name, age, gender, traits, education, work_history, skills,
desired_salary. Job fields: name, title, company, team, description, requirements, salary,
benefits, location.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulation.config.errors import ConfigProblem, problems_from_validation
from simulation.core import ImportedProfiles
from simulation.population.synth import TRAITS, UniqueSpace, person, rng_for

DEGREES = ["High school diploma", "Associate degree", "Bachelor's degree", "Master's degree", "PhD"]
FIELDS = ["Computer Science", "Data Science", "Mechanical Engineering", "Nursing", "Finance", "Marketing",
          "Education", "Law", "Graphic Design", "Biology", "Economics", "Logistics"]
SKILLS = {
    "Computer Science": ["Python", "Java", "SQL", "Cloud", "Testing", "Git"],
    "Data Science": ["Python", "Statistics", "SQL", "Machine Learning", "Visualization"],
    "Mechanical Engineering": ["CAD", "Manufacturing", "Thermodynamics", "Project Management"],
    "Nursing": ["Patient Care", "Triage", "Pharmacology", "Record Keeping"],
    "Finance": ["Accounting", "Excel", "Risk Analysis", "Forecasting"],
    "Marketing": ["SEO", "Copywriting", "Market Research", "Social Media"],
    "Education": ["Curriculum Design", "Classroom Management", "Tutoring"],
    "Law": ["Contracts", "Compliance", "Legal Research", "Negotiation"],
    "Graphic Design": ["Illustration", "Typography", "Figma", "Branding"],
    "Biology": ["Lab Work", "Genomics", "Data Analysis", "Microscopy"],
    "Economics": ["Econometrics", "Policy Analysis", "Excel", "Statistics"],
    "Logistics": ["Supply Chain", "Inventory", "Scheduling", "Procurement"],
}
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Industries", "Wayne Logistics",
             "Hooli", "Vandelay Imports", "Soylent Foods", "Tyrell Systems", "Cyberdyne", "Aperture Labs",
             "Wonka Industries", "Gringotts Bank", "Oceanic Air", "Monarch Media", "Nakatomi Trading",
             "Pied Piper", "Dunder Paper", "Blue Sun", "Oscorp", "Massive Dynamic", "Virtucon", "Prestige Worldwide"]
TITLES = ["Software Engineer", "Data Analyst", "Mechanical Engineer", "Registered Nurse", "Financial Analyst",
          "Marketing Specialist", "Teacher", "Paralegal", "Graphic Designer", "Lab Technician", "Economist",
          "Logistics Coordinator", "Product Manager", "Customer Support Agent", "Sales Representative",
          "Operations Manager"]
SENIORITY = ["Junior", "Mid-level", "Senior", "Lead", "Principal"]
CITIES = ["New York", "London", "Berlin", "Toronto", "Singapore", "Sydney", "Paris", "Austin", "Madrid",
          "Seoul", "Nairobi", "Sao Paulo", "Dublin", "Warsaw", "Bangalore", "Chicago"]
TEAMS = [f"{a} {b}" for a in ["Core", "Growth", "Platform", "Field", "Research", "Retail", "Partner", "Quality"]
         for b in ["North", "South", "East", "West", "Central"]]
BENEFITS = ["Health insurance", "Remote work", "Stock options", "Paid parental leave", "Training budget",
            "Gym membership", "Flexible hours", "Pension plan"]


JOB_SPACE = [len(TITLES), len(SENIORITY), len(COMPANIES), len(CITIES), len(TEAMS)]


def generate_seeker(seed: int, index: int) -> dict[str, Any]:
    """A unique job seeker: a person (see simulation.population.synth) plus education, work and skills."""
    p, (d, fld) = person("seeker", seed, index, [len(DEGREES), len(FIELDS)])
    rng = rng_for("seeker-cv", seed, index)
    field = FIELDS[fld]
    age = max(22, p["age"])
    years = max(0, age - 22 - rng.randint(0, 3))
    history = []
    start = 2026 - years
    for _ in range(min(3, 1 + years // 6)):
        span = rng.randint(1, 6)
        history.append({"company": rng.choice(COMPANIES), "position": rng.choice(TITLES), "time": f"{start}-{min(2026, start + span)}"})
        start += span
    return {
        **p,
        "age": age,
        "education": f"{DEGREES[d]} in {field}",
        "work_history": history,
        "skills": rng.sample(SKILLS[field], k=min(3, len(SKILLS[field]))),
        "desired_salary": 30_000 + 5_000 * rng.randint(0, 24),
    }


def generate_job(seed: int, index: int) -> dict[str, Any]:
    """A unique job ad: title, company, team and city form its unique tuple."""
    t, s, c, city, team = UniqueSpace(JOB_SPACE, salt=seed + 7).combo(index)
    rng = rng_for("job", seed, index)
    title = f"{SENIORITY[s]} {TITLES[t]}"
    low = 30_000 + 10_000 * s + 5_000 * rng.randint(0, 8)
    return {
        "name": f"{title} at {COMPANIES[c]} ({TEAMS[team]}, {CITIES[city]})",
        "title": title,
        "company": COMPANIES[c],
        "team": TEAMS[team],
        "description": f"{COMPANIES[c]} is hiring a {title.lower()} for its {TEAMS[team]} team in {CITIES[city]}.",
        "requirements": [f"{rng.randint(0, 3) + s} years of experience", rng.choice(DEGREES[1:]) + " or equivalent"],
        "salary": f"USD {low:,} - {low + 20_000:,} annually",
        "benefits": rng.sample(BENEFITS, k=3),
        "location": CITIES[city],
    }


# -- GenSim-format import -----------------------------------------------------------------------


class _Strictish(BaseModel):
    model_config = ConfigDict(extra="allow")


class GenSimTraits(_Strictish):
    """A seeker's ``trait`` section: typed where a prompt or rule reads a number; the levels are text."""

    age: int | None = Field(default=None, alias="Age", ge=14, le=100)
    gender: str | None = Field(default=None, alias="Gender")
    desired_salary: int | None = Field(default=None, alias="Desired Salary", gt=0)


class GenSimCV(_Strictish):
    education: str = Field(default="", alias="Education")
    work: list[dict[str, Any]] = Field(default_factory=list, alias="Work Experience")
    skills: list[str] = Field(default_factory=list, alias="Skills")


class GenSimSeekerArgs(_Strictish):
    name: str = Field(min_length=1)
    cv: GenSimCV
    trait: GenSimTraits = Field(default_factory=GenSimTraits)


class GenSimInterviewerArgs(_Strictish):
    name: str = Field(min_length=1)
    jd: str
    jr: list[str] = Field(default_factory=list)
    company: str
    salary: str = ""
    benefits: list[str] = Field(default_factory=list)
    location: str = ""


class GenSimEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    args: dict[str, Any]


def _entries(path: Path, model: type[BaseModel]) -> tuple[list[BaseModel], list[ConfigProblem]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return [], [ConfigProblem(str(path), "", f"invalid JSON: {e}")]
    if not isinstance(raw, list):
        return [], [ConfigProblem(str(path), "", "top level must be a list of profiles")]
    out, problems = [], []
    for i, item in enumerate(raw):
        try:
            args = GenSimEntry.model_validate(item).args if isinstance(item, dict) and "args" in item else item
            out.append(model.model_validate(args))
        except ValidationError as e:
            problems += problems_from_validation(e, str(path), prefix=f"[{i}]")
    return out, problems


def _level(v: Any) -> str:
    return str(v) if v is not None else "Average"


SEEKER_FIELDS = {"name", "cv", "trait"}
CV_FIELDS = {"Education", "Work Experience", "Skills"}
WORK_FIELDS = {"Company", "Position", "Time"}
TRAIT_NAMES = {t.replace("_", " ").title(): t for t in TRAITS}  # "Risk Tolerance" -> risk_tolerance


def import_seekers(path: Path) -> ImportedProfiles:
    """GenSim ``SeekerAgent`` entries. Every field reaches a prompt (the CV goes to interviewers; name,
    age, gender, traits and a stated desired salary to the seeker's own system prompt); fields this
    scenario has no use for are listed as ignored, and nothing is invented: a seeker whose entry states
    no desired salary has none (no prompt mentions one, and the salary checks skip that seeker)."""
    entries, problems = _entries(path, GenSimSeekerArgs)
    if problems:
        raise ValueError(str(problems[0]))
    out, ignored, missing_traits = [], set(), 0
    for e in entries:
        assert isinstance(e, GenSimSeekerArgs)
        tr = e.trait
        extra_traits = {k: v for k, v in (tr.model_extra or {}).items() if k not in TRAIT_NAMES}
        levels = {TRAIT_NAMES[k]: v for k, v in (tr.model_extra or {}).items() if k in TRAIT_NAMES}
        missing_traits += len(TRAITS) - len(levels)
        ignored |= {f"args.{k}" for k in (e.model_extra or {})} | {f"cv.{k}" for k in (e.cv.model_extra or {})}
        ignored |= {f"trait.{k}" for k in extra_traits}
        ignored |= {f"cv.Work Experience.{k}" for w in e.cv.work for k in w if k not in WORK_FIELDS}
        profile: dict[str, Any] = {
            "name": e.name, "age": tr.age, "gender": tr.gender, "education": e.cv.education,
            "work_history": [{"company": w.get("Company", ""), "position": w.get("Position", ""),
                              "time": w.get("Time", "")} for w in e.cv.work],
            "skills": [str(s) for s in e.cv.skills],
            "traits": {t: _level(levels.get(t)) for t in TRAITS},
        }
        if tr.desired_salary is not None:
            profile["desired_salary"] = tr.desired_salary
        out.append({k: v for k, v in profile.items() if v is not None})
    assumed = []
    if missing_traits:
        assumed.append(f"{missing_traits} trait level(s) the file leaves out are 'Average'")
    if not any("desired_salary" in p for p in out):
        assumed.append("no desired salary (the file states none): prompts and salary checks leave it out")
    return ImportedProfiles(out, tuple(sorted(ignored)), tuple(assumed))


def import_jobs(path: Path) -> ImportedProfiles:
    """GenSim ``InterviewerAgent`` entries. The company text is kept whole (``company_about``; its part
    before the first comma is the short ``company`` name); description and benefits reach seekers."""
    entries, problems = _entries(path, GenSimInterviewerArgs)
    if problems:
        raise ValueError(str(problems[0]))
    out, ignored = [], set()
    for e in entries:
        assert isinstance(e, GenSimInterviewerArgs)
        short = e.company.split(",")[0].strip() or e.company
        ignored |= {f"args.{k}" for k in (e.model_extra or {})}
        out.append({"name": f"{e.name} at {short}", "title": e.name, "company": short, "company_about": e.company,
                    "description": e.jd, "requirements": e.jr, "salary": e.salary, "benefits": e.benefits,
                    "location": e.location})
    return ImportedProfiles(out, tuple(sorted(ignored)))


def check_seekers(path: Path) -> list[ConfigProblem]:
    return _entries(path, GenSimSeekerArgs)[1]


def check_jobs(path: Path) -> list[ConfigProblem]:
    return _entries(path, GenSimInterviewerArgs)[1]


def experience_years(profile: dict[str, Any]) -> int | None:
    """Years summed over the work history's ``start-end`` spans, or None when they are not dated."""
    total = 0
    for w in profile.get("work_history", []):
        m = re.fullmatch(r"\s*(\d{4})\s*-\s*(\d{4})\s*", str(w.get("time", "")))
        if not m:
            return None
        total += int(m[2]) - int(m[1])
    return total
