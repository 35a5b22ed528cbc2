"""Control of a live run from a long-lived process (the web interface)."""

from .controller import ControlError, LiveStatus, RunController
from .jobs import Job, JobStatus

__all__ = ["ControlError", "Job", "JobStatus", "LiveStatus", "RunController"]
