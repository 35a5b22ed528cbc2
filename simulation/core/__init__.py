"""The framework's core: agents, environment, phases, the round loop and its runtime."""

from .agent import Agent
from .context import GroupServices, StepContext
from .environment import Environment
from .phase import Phase
from .records import Action
from .scenario import ScenarioSpec, load_scenario

__all__ = ["Action", "Agent", "Environment", "GroupServices", "Phase", "ScenarioSpec", "StepContext", "load_scenario"]
