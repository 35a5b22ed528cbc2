"""The framework's core: agents, environment, phases, the round loop and its runtime."""

from .agent import Agent
from .context import GroupServices, StepContext
from .environment import Environment
from .phase import Phase
from .records import Action, Message
from .scenario import ImportedProfiles, ScenarioSpec, load_scenario

__all__ = ["Action", "Agent", "Environment", "ImportedProfiles", "GroupServices", "Message", "Phase", "ScenarioSpec", "StepContext", "load_scenario"]
