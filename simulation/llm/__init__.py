"""LLM access: a small chat interface and composable wrappers (pool, structure, cache, record)."""

from .agent_llm import AgentLLM
from .cache import CachingClient, ReplayMiss, ResponseCache
from .fake import FakeChatClient
from .http import OpenAIChatClient
from .pool import Endpoint, EndpointPool, NoHealthyEndpoint
from .recording import RecordingClient
from .structured import StructuredClient
from .types import CallTag, ChatClient, ChatRequest, ChatResult, LLMError

__all__ = [
    "AgentLLM", "CachingClient", "CallTag", "ChatClient", "ChatRequest", "ChatResult", "Endpoint",
    "EndpointPool", "FakeChatClient", "LLMError", "NoHealthyEndpoint", "OpenAIChatClient", "RecordingClient",
    "ReplayMiss", "ResponseCache", "StructuredClient",
]
