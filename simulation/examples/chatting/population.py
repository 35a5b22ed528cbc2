"""Members of a work group: a unique person (simulation.population.synth) plus a job in the team.

Fields: name, age, gender, traits, role, focus (what they are working on), style (how they write).
"""

from __future__ import annotations

from typing import Any

from simulation.population.synth import person, rng_for

ROLES = ["engineer", "designer", "product manager", "data scientist", "QA lead", "team lead", "writer", "analyst"]
FOCUS = ["the release schedule", "a flaky test suite", "the onboarding flow", "a customer escalation",
         "the quarterly roadmap", "a database migration", "the design system", "hiring for the team"]
STYLES = ["terse", "friendly", "formal", "enthusiastic", "skeptical"]


def generate_member(seed: int, index: int) -> dict[str, Any]:
    p, (role,) = person("member", seed, index, [len(ROLES)])
    rng = rng_for("member-work", seed, index)
    return {**p, "role": ROLES[role], "focus": rng.choice(FOCUS), "style": rng.choice(STYLES)}
