"""Recommendation: a film site with a social circle (watch, feel, rate, chat, post)."""

from simulation.core import ScenarioSpec

from .agents import UserAgent
from .checks import CHECKS
from .environment import FilmSite, RecommendationParams
from .population import generate_user

SCENARIO = ScenarioSpec(
    name="recommendation",
    agent_classes={"user": UserAgent},
    environment=FilmSite,
    params_model=RecommendationParams,
    generators={"user": generate_user},
    checks=CHECKS,
    key_metrics=["mean_rating", "watches", "ratings", "genre_entropy", "posts"],
)
