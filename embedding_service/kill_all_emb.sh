#!/usr/bin/env bash
# Stop exactly the embedding servers the launch script started (pids from its manifest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${GENSIM_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || PY=python3
cd "$ROOT"
exec "$PY" -m simulation.services.launch stop embedding
