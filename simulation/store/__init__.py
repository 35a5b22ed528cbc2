"""The run folder and its SQLite database."""

from .run_store import RunStore

__all__ = ["RunStore"]
