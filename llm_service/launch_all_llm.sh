#!/usr/bin/env bash
# Start the servers described in llm_config.yml (or the bundled model on CPU) and write the manifest
# that `gensim run` reads. Usage: bash llm_service/launch_all_llm.sh [--config FILE] [--base-port PORT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${GENSIM_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || PY=python3
cd "$ROOT"
exec "$PY" -m simulation.services.launch start llm --config "llm_service/llm_config.yml" "$@"
