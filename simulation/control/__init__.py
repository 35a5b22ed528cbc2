"""Control of a live run from a long-lived process (the web interface)."""

from .controller import ControlError, LiveStatus, RunController

__all__ = ["ControlError", "LiveStatus", "RunController"]
