#!/usr/bin/env bash
# Stop exactly the embedding servers the launch script started (pids from its manifest).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../simulation/scripts/python_env.sh"
exec "$PY" -m simulation.services.launch stop embedding
