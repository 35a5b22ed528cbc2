#!/usr/bin/env bash
# Set up, then lint and run the whole test suite (unit tests, then integration tests with real servers).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "$ROOT/simulation/scripts/setup.sh"
bash "$ROOT/simulation/scripts/browser.sh"
cd "$ROOT"
VENV="${GENSIM_VENV:-$ROOT/.venv}"
"$VENV/bin/ruff" check simulation tests bench
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
