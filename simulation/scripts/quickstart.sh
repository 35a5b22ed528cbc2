#!/usr/bin/env bash
# Set up, then run job seeking on the embedded default (CPU vLLM + embedding server on 127.0.0.1).
# Extra arguments go to `gensim run`, e.g. --agents 40 --rounds 3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "$ROOT/simulation/scripts/setup.sh"
cd "$ROOT"
exec "${GENSIM_VENV:-$ROOT/.venv}/bin/gensim" run job_seeking "$@"
