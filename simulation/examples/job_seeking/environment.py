"""The job market: a job board searched by embeddings, message routing, validity checks, metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulation.core import Action, Environment, Message, Phase
from simulation.embedding.index import VectorIndex


class JobSeekingParams(BaseModel):
    """The ``scenario:`` section of ``simulation_config.yml``."""

    model_config = ConfigDict(extra="forbid")
    search_k: int = Field(default=4, ge=1, le=50, description="jobs shown by the search at most")
    max_applications: int = Field(default=2, ge=1, le=20)
    applications: Literal["per_posting", "list"] = Field(
        default="per_posting",
        description="per_posting: one apply/skip choice per shown posting (checked by content, examined by "
                    "balanced accuracy); list: one JSON answer naming the postings (the scenario before 2026-12-05)")
    state_fit: bool = Field(
        default=True,
        description="each posting's prompt states its top pay as a share of the desired salary and how many of "
                    "its requirements the seeker meets, and each offer its pay share (what the posting and "
                    "offer checks compare); false: the model compares them itself (the scenario before "
                    "2026-12-06: a 135M model learned neither comparison from corrections then, runs S-U)")
    state_requirements: bool = Field(
        default=True,
        description="each screening and offer-decision prompt states how many of the job's requirements the "
                    "candidate meets (what the screening and offer checks compare), as an applicant-tracking "
                    "system would; false: the hiring manager compares the CV with the requirements itself (the "
                    "scenario before 2026-12-07: the offers' calls no check grades drifted 0.32-0.53 in the "
                    "corrections then, runs E-E3)")
    interview_turns: int = Field(default=1, ge=1, le=5, description="question/answer pairs per interview")
    openings_per_job: int = Field(default=2, ge=1, le=1000)
    dialogue_max_tokens: int = Field(default=40, ge=4, le=1024)


def job_text(job: dict[str, Any]) -> str:
    return f"{job['title']} at {job['company']} in {job['location']}. {job['description']} Requirements: {'; '.join(job['requirements'])}"


class JobBoard:
    """What agents see of the market: job ads and a batched embedding search over the open ones."""

    def __init__(self, ids: list[str], jobs: list[dict[str, Any]], vectors: np.ndarray, params: JobSeekingParams):
        self.params = params
        self.jobs = dict(zip(ids, jobs, strict=True))
        self.index = VectorIndex(ids, vectors)

    def update(self, data: dict[str, Any]) -> None:
        """Between rounds: jobs whose openings are filled leave the search."""
        self.index.exclude(data["closed"])

    async def search(self, query: np.ndarray, k: int) -> list[tuple[str, dict[str, Any]]]:
        return [(i, self.jobs[i]) for i in await self.index.search(query, k)]


class JobMarket(Environment):
    """Phases of a round: search & apply, screen, interview turns, offers, responses, notifications."""

    def __init__(self, params: dict[str, Any], seed: int):
        super().__init__(params, seed)
        self.p = JobSeekingParams.model_validate(params)
        self.employed: dict[str, str] = {}  # seeker -> job
        self.hires: Counter[str] = Counter()  # job -> hires
        self.closed: set[str] = set()
        self.round_counts: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.n_seekers = 0
        self.board: JobBoard | None = None
        self.job_ids: set[str] = set()
        self._applied: set[tuple[str, str]] = set()
        self._offered: set[tuple[str, str]] = set()

    async def setup(self, sim: Any) -> None:
        jobs = sim.profiles("interviewer")
        self.n_seekers = len(sim.profiles("seeker"))
        vecs = await sim.embeddings.embed([job_text(j) for _, j in jobs]) if jobs else np.zeros((0, 384))
        self.board = JobBoard([i for i, _ in jobs], [j for _, j in jobs], vecs, self.p)
        self.job_ids = {i for i, _ in jobs}

    def world(self) -> JobBoard | None:
        """Handed to the agent groups once; the market itself keeps only the job ids it checks against."""
        board, self.board = self.board, None
        return board

    def world_update(self, round_: int) -> dict[str, Any]:
        return {"closed": sorted(self.closed)}

    def phases(self, round_: int) -> list[Phase]:
        ph = [Phase("search", "seeker", "search"), Phase("screen", "interviewer", "screen", "inbox")]
        for t in range(1, self.p.interview_turns + 1):
            ph += [Phase(f"ask_{t}", "interviewer", "ask", "inbox"), Phase(f"answer_{t}", "seeker", "answer", "inbox")]
        ph += [Phase("decide", "interviewer", "decide", "inbox"), Phase("respond", "seeker", "respond", "inbox"),
               Phase("notify", "interviewer", "notify", "inbox")]
        return ph

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        if phase.name == "search":
            self.round_counts.clear()
            self._applied.clear()
            self._offered.clear()
        c = self.round_counts
        for a in actions:
            agent_id, action, valid, data = a.agent_id, a.action, a.valid, a.data
            ok = valid and self._consistent(agent_id, action, data)
            if not ok:
                c["invalid_actions"] += 1
            if action == "search":
                c["searches"] += 1
            elif action == "apply":
                c["applications"] += 1
                self._applied.add((agent_id, data["job"]))
            elif action == "screen":
                c["screenings"] += 1
                c["screenings_passed"] += data["result"] == "pass"
            elif action == "interview":
                c["interviews"] += 1
            elif action == "offer_decision":
                if data["result"] == "offer":
                    c["offers"] += 1
                    self._offered.add((data["seeker"], agent_id))
            elif action == "accept":
                c["acceptances"] += 1
                self.employed[agent_id] = data["job"]
            elif action == "hire":
                self.hires[agent_id] += 1
                if self.hires[agent_id] >= self.p.openings_per_job:
                    self.closed.add(agent_id)

    def _consistent(self, agent_id: str, action: str, data: dict[str, Any]) -> bool:
        if action == "apply":
            return data.get("job") in self.job_ids and agent_id not in self.employed
        if action == "screen":
            return (data.get("seeker"), agent_id) in self._applied
        if action == "accept":
            return (agent_id, data.get("job")) in self._offered
        return True

    def metrics(self, round_: int) -> dict[str, float]:
        c = self.round_counts
        out = {k: float(c[k]) for k in ("searches", "applications", "screenings", "screenings_passed", "interviews",
                                         "offers", "acceptances", "invalid_actions")}
        out["employment_rate"] = len(self.employed) / self.n_seekers if self.n_seekers else 0.0
        for k in ("applications", "offers", "acceptances", "interviews"):
            self.totals[k] += c[k]
        return out

    def summary(self) -> dict[str, Any]:
        return {"applications": self.totals["applications"], "interviews": self.totals["interviews"],
                "offers": self.totals["offers"], "hires": self.totals["acceptances"],
                "employment_rate": round(len(self.employed) / self.n_seekers, 4) if self.n_seekers else 0.0}

    def get_state(self) -> dict[str, Any]:
        return {"employed": self.employed, "hires": dict(self.hires), "closed": sorted(self.closed),
                "totals": dict(self.totals)}

    def set_state(self, s: dict[str, Any]) -> None:
        self.employed = dict(s["employed"])
        self.hires = Counter(s["hires"])
        self.closed = set(s["closed"])
        self.totals = Counter(s["totals"])
