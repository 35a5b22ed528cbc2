"""Chatting: a work-group chat room with turns, @mentions, a turn cap and a goodbye rule."""

from simulation.core import ScenarioSpec

from .agents import MemberAgent
from .checks import CHECKS
from .environment import ChatRooms, ChattingParams
from .population import generate_member

SCENARIO = ScenarioSpec("chatting", {"member": MemberAgent}, ChatRooms, ChattingParams, {"member": generate_member},
                        checks=CHECKS, key_metrics=["messages", "mean_words", "mentions", "joins", "goodbyes"])
