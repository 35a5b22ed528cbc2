"""Token counting for memory budgets: the served model's tokenizer when available."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol


class TokenCounter(Protocol):
    """Counts and cuts text in tokens (prompt and memory budgets are measured with it)."""

    def count(self, text: str) -> int:
        """Tokens in ``text``."""

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""


class ByteTokenCounter:
    """Counts UTF-8 bytes: an upper bound on BPE tokens, so a budget it enforces is never exceeded."""

    def count(self, text: str) -> int:
        """UTF-8 bytes in ``text``."""
        return len(text.encode("utf-8"))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` bytes, on a character boundary."""
        return text.encode("utf-8")[:max(0, max_tokens)].decode("utf-8", errors="ignore")


class HFTokenCounter:
    """Exact counts with a ``tokenizer.json`` (the chat model's own tokenizer)."""

    def __init__(self, tokenizer_file: str | Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(tokenizer_file))

    def count(self, text: str) -> int:
        """Tokens of the chat model's tokenizer in ``text``."""
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to its first ``max_tokens`` tokens."""
        if max_tokens <= 0:
            return ""
        enc = self.tok.encode(text, add_special_tokens=False)
        if len(enc.ids) <= max_tokens:
            return text
        cut = enc.offsets[max_tokens - 1][1]
        out = text[:cut]
        while out and self.count(out) > max_tokens:  # merges at the cut can add a token
            out = out[:-1]
        return out


def token_counter_for(backend: str) -> TokenCounter:
    """How a run counts tokens, decided by its config alone.

    The fake model's runs count bytes (no model is needed, so a bare ``pip install`` can run
    ``--llm fake``); every other run uses the chat model's tokenizer.
    """
    return ByteTokenCounter() if backend == "fake" else default_token_counter()


@lru_cache(maxsize=1)
def default_token_counter() -> TokenCounter:
    """The bundled chat model's tokenizer, on every host and in every process.

    Prompts and memory are cut by it, and replay keys hold the prompts, so it never depends on what
    a host happens to have prepared: the tokenizer is extracted from the bundled GGUF when missing.
    """
    from ..services.model_assets import chat_tokenizer_file

    return HFTokenCounter(chat_tokenizer_file())
