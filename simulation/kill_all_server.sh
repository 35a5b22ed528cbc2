#!/usr/bin/env bash
# Stop the agent-server nodes launch_server.sh started on this host, by their recorded process groups.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/python_env.sh"
exec "$PY" -m simulation.services.agent_servers stop
