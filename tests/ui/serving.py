"""Serve the web interface in-process on a free loopback port, for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def serving(runs: Path, scenario_roots: list[Path] | None = None, auth: str | None = None) -> Iterator[tuple[str, object]]:
    """``(url, UIContext)`` of a page served until the block ends."""
    from simulation.ui.server import make_app

    app, ctx = make_app(runs, scenario_roots, auth)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    t0 = time.monotonic()
    while not srv.started:
        if time.monotonic() - t0 > 60:
            raise RuntimeError("the UI server did not start in 60 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/", ctx
    finally:
        st = ctx.controller.status()
        if st.active and st.state != "starting":
            ctx.controller.stop()
        ctx.controller.wait(120)
        srv.should_exit = True
        t.join(10)
