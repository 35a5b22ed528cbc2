"""LLM access: a small chat interface and composable wrappers (pool, structure, cache, record)."""

from .agent_llm import AgentLLM, Answer
from .cache import CachingClient, ReplayMiss, ResponseCache
from .fake import FakeChatClient
from .http import OpenAIChatClient
from .pool import Endpoint, EndpointOutage, EndpointPool
from .recording import RecordingClient
from .structured import StructuredClient
from .types import CallTag, ChatClient, ChatRequest, ChatResult, LLMError

__all__ = [
    "AgentLLM", "Answer", "CachingClient", "CallTag", "ChatClient", "ChatRequest", "ChatResult", "Endpoint",
    "EndpointOutage", "EndpointPool", "FakeChatClient", "LLMError", "OpenAIChatClient", "RecordingClient",
    "ReplayMiss", "ResponseCache", "StructuredClient",
]
