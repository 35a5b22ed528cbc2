"""``gensim ui``: serve the page on a FastAPI app (loopback by default; a login for any other address)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .security import MAX_UPLOAD_BYTES, check_bind, parse_auth


def make_app(runs_dir: Path, scenario_roots: list[Path] | None = None, auth: str | None = None) -> tuple[Any, Any]:
    """The FastAPI app with the page mounted at ``/``, and the page's :class:`UIContext`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr
    from fastapi import FastAPI

    from .actions import UIContext
    from .app import build_app

    ctx = UIContext(runs_dir, list(scenario_roots or []))
    demo = build_app(ctx)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    creds = parse_auth(auth)
    app = gr.mount_gradio_app(app, demo, path="/", auth=creds, footer_links=[], max_file_size=MAX_UPLOAD_BYTES,
                              allowed_paths=[str(ctx.runs_dir)], show_error=True)
    return app, ctx


def serve(host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, runs_dir: str | Path = "runs",
          scenario_roots: list[str] | None = None) -> None:
    """Serve until Ctrl-C. A live run is stopped after its round when the server stops (resumable)."""
    import uvicorn

    check_bind(host, parse_auth(auth))
    app, ctx = make_app(Path(runs_dir), [Path(p) for p in scenario_roots or []], auth)
    print(f"GenSim web interface on http://{host}:{port}/ (runs in {ctx.runs_dir}; Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        st = ctx.controller.status()
        if st.active and st.state != "starting":
            ctx.controller.stop()
            ctx.controller.wait(600)
