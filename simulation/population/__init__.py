"""Populations: scaling counts, building agent profiles (generated or imported), synthesis and statistics."""

from .build import agent_ids, build_profiles, scale_counts
from .synth import PopulationStats, UniqueSpace, person, rng_for

__all__ = ["PopulationStats", "UniqueSpace", "agent_ids", "build_profiles", "person", "rng_for", "scale_counts"]
