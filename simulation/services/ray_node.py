"""``ray start`` that keeps a loopback node on loopback (run by agent_servers, not by hand).

Ray replaces ``--node-ip-address 127.0.0.1`` with the host's routable address
(``resolve_ip_for_localhost``), so a node meant to stay on this machine would announce, and bind,
the LAN address. Here an explicit loopback address is kept as given; any other address is untouched.
"""

from __future__ import annotations

import sys

import ray._private.services as services
from ray.scripts.scripts import main as ray_main

_resolve = services.resolve_ip_for_localhost


def keep_loopback(host: str) -> str:
    if host.startswith("127.") or host == "::1":
        return host
    return _resolve(host)


def main() -> None:
    services.resolve_ip_for_localhost = keep_loopback
    sys.argv[0] = "ray"
    ray_main()


if __name__ == "__main__":
    main()
