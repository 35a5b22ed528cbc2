"""Job seeking: seekers search an embedding-indexed job board, apply, interview and take offers."""

from simulation.core import ScenarioSpec

from .agents import InterviewerAgent, SeekerAgent
from .checks import CHECKS
from .environment import JobMarket, JobSeekingParams
from .population import check_jobs, check_seekers, generate_job, generate_seeker, import_jobs, import_seekers

SCENARIO = ScenarioSpec(
    name="job_seeking",
    agent_classes={"seeker": SeekerAgent, "interviewer": InterviewerAgent},
    environment=JobMarket,
    params_model=JobSeekingParams,
    generators={"seeker": generate_seeker, "interviewer": generate_job},
    importers={"seeker": import_seekers, "interviewer": import_jobs},
    validators={"seeker": check_seekers, "interviewer": check_jobs},
    checks=CHECKS,
    key_metrics=["employment_rate", "acceptances", "offers", "interviews", "applications"],
)
