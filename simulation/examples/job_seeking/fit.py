"""How well a seeker and a job fit: the job's top pay and the requirements a CV meets. Checks grade
with these facts, and prompts state them where ``scenario.state_fit`` is on."""

from __future__ import annotations

import re
from typing import Any

from .population import DEGREES, experience_years

LOW_PAY = 0.8  # applying to a job whose top salary is below this share of the desired salary


def top_salary(job: dict[str, Any]) -> int | None:
    """The highest figure of a salary text ("USD 40,000 - 60,000 annually"), or None."""
    figures = [int(x.replace(",", "")) for x in re.findall(r"\d[\d,]{2,}", str(job.get("salary", "")))]
    return max(figures) if figures else None


def degree_level(text: str) -> int | None:
    """Position of a degree in ``DEGREES`` named at the start of ``text`` ("Master's degree in Law")."""
    low = text.lower()
    found = [i for i, d in enumerate(DEGREES) if low.startswith(d.lower())]
    return found[-1] if found else None


def meets_requirements(cv: dict[str, Any], job: dict[str, Any]) -> tuple[int, int] | None:
    """(requirements met, requirements known) for the generated "N years" and degree requirements."""
    met = known = 0
    for req in job.get("requirements", []):
        years = re.match(r"(\d+) years? of experience", req)
        if years:
            have = experience_years(cv)
            if have is None:
                return None
            known += 1
            met += have >= int(years[1])
            continue
        need, have = degree_level(req), degree_level(str(cv.get("education", "")))
        if need is not None and have is not None:
            known += 1
            met += have >= need
    return (met, known) if known else None


def pay_share(job: dict[str, Any], desired: Any) -> float | None:
    """The job's top pay as a share of a desired salary, or None where either is unknown."""
    pay = top_salary(job)
    if pay is None or not isinstance(desired, int | float) or desired <= 0:
        return None
    return pay / desired


def pay_words(share: float) -> str:
    """A pay share in words, parted where the salary checks part it ("far below" under ``LOW_PAY``): the
    135M model did not learn to threshold a stated percentage from corrections (run V), and words give
    each side its own tokens."""
    if share < LOW_PAY:
        return "far below the salary you want"
    return "a little below the salary you want" if share < 1 else "at least the salary you want"
