"""Where agent groups run: in the driver's process (``local``) or as Ray actors (``ray``)."""

import os

from .base import GroupCall, GroupLost, Runtime
from .host import GroupHost, GroupSpec, PhaseOutput
from .local import LocalRuntime


def make_runtime(name: str, address: str | None = None, servers: int = 2, cluster_share: float = 1.0) -> Runtime:
    """``local`` or ``ray`` (imported only when asked for: Ray is heavy); on a cluster, a run takes
    ``cluster_share`` of its slots."""
    if name == "ray":
        from ..services.agent_servers import launched_address

        address = address or launched_address()
        if address:  # launch_server.sh clusters use token auth; Ray reads the mode when it is imported
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        from .ray_runtime import RayRuntime

        return RayRuntime(address, servers, cluster_share)
    return LocalRuntime(servers)


__all__ = ["GroupCall", "GroupHost", "GroupLost", "GroupSpec", "LocalRuntime", "PhaseOutput", "Runtime", "make_runtime"]
