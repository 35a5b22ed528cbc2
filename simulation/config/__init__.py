"""Typed configuration: pydantic models and the one loader that reads them."""

from .errors import ConfigError, ConfigProblem
from .loader import load_run_config, resolve_scenario_dir
from .models import (
    ActivationConfig,
    AgentPopulationConfig,
    EmbeddingSettings,
    LLMSettings,
    MemoryConfig,
    ModelConfig,
    RunConfig,
    SimulationConfig,
)

__all__ = [
    "ActivationConfig", "AgentPopulationConfig", "ConfigError", "ConfigProblem", "EmbeddingSettings",
    "LLMSettings", "MemoryConfig", "ModelConfig", "RunConfig", "SimulationConfig",
    "load_run_config", "resolve_scenario_dir",
]
