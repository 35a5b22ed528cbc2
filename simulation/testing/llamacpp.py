"""A llama.cpp OpenAI-compatible server on the bundled GGUF: the non-vLLM server of the portability test.

``python -m simulation.testing.llamacpp --port P`` serves until killed (``xllamacpp`` runs the
server inside this process). llama.cpp answers any model name, has no ``/version``, honours the
standard ``response_format`` JSON schema and ignores vLLM's ``structured_outputs``.
"""

from __future__ import annotations

import argparse
import signal
import threading


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import xllamacpp as xlc

    from ..services.model_assets import bundled_gguf

    p = xlc.CommonParams()
    p.model.path = str(bundled_gguf())
    p.hostnames = [a.host]
    p.port = a.port
    p.n_parallel = a.parallel
    p.n_ctx = 2048 * a.parallel
    p.kv_unified = True
    p.cpuparams.n_threads = a.threads
    server = xlc.Server(p)  # noqa: F841 - serves while referenced
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()


if __name__ == "__main__":
    main()
