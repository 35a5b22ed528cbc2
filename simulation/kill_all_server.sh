#!/usr/bin/env bash
# Stop the agent-server nodes launch_server.sh started on this host, by their recorded process groups.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${GENSIM_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || PY=python3
cd "$ROOT"
exec "$PY" -m simulation.services.agent_servers stop
