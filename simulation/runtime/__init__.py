"""Where agent groups run: in the driver's process (``local``) or as Ray actors (``ray``)."""

from .base import GroupLost, Runtime
from .host import GroupHost, GroupSpec, PhaseOutput
from .local import LocalRuntime


def make_runtime(name: str, address: str | None = None, servers: int = 2) -> Runtime:
    """``local`` or ``ray`` (imported only when asked for: Ray is heavy)."""
    if name == "ray":
        from .ray_runtime import RayRuntime

        return RayRuntime(address, servers)
    return LocalRuntime()


__all__ = ["GroupHost", "GroupLost", "GroupSpec", "LocalRuntime", "PhaseOutput", "Runtime", "make_runtime"]
