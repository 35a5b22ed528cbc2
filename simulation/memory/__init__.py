"""Agent memory: none, short-term, short+long-term, and with reflection."""

from .agent_memory import AgentMemory, MemoryHost
from .tokens import ByteTokenCounter, HFTokenCounter, TokenCounter, default_token_counter, token_counter_for

__all__ = ["AgentMemory", "ByteTokenCounter", "HFTokenCounter", "MemoryHost", "TokenCounter",
           "default_token_counter", "token_counter_for"]
