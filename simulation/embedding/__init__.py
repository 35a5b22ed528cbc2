"""Embeddings: a batched, pooled client with a cache that makes replays need no server."""

from .pool import EmbeddingCache, EmbeddingPool, OpenAIEmbeddingClient, text_key

__all__ = ["EmbeddingCache", "EmbeddingPool", "OpenAIEmbeddingClient", "text_key"]
