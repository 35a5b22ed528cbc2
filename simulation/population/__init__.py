"""Populations: scaling counts, building agent profiles (generated or imported), synthesis and statistics."""

from .build import ImportedProfiles, agent_id, agent_ids, build_profiles, scale_counts
from .graph import neighbours, small_world
from .synth import PopulationStats, UniqueSpace, person, rng_for

__all__ = ["ImportedProfiles", "PopulationStats", "UniqueSpace", "agent_id", "agent_ids", "build_profiles", "neighbours",
           "person", "rng_for", "scale_counts", "small_world"]
