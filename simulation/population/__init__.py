"""Populations: scaling counts and building agent profiles (generated or imported)."""

from .build import agent_ids, build_profiles, scale_counts

__all__ = ["agent_ids", "build_profiles", "scale_counts"]
