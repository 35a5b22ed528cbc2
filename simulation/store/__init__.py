"""The run folder and its SQLite database."""

from .lock import RunLock
from .run_store import RunStore

__all__ = ["RunLock", "RunStore"]
