#!/usr/bin/env bash
# Start (or join) a Ray node on this host offering <server_num_per_host> agent-server slots.
#   bash simulation/launch_server.sh <server_num_per_host> <base_port> <scenario> [--head HOST:PORT] [--host ADDR]
# The first host (no --head) becomes the head, listening at <base_port>. Binds 127.0.0.1 unless --host.
# Then: gensim run <scenario> --runtime ray      Stop: bash simulation/kill_all_server.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/python_env.sh"
if [ "$#" -lt 3 ]; then
  echo "usage: bash simulation/launch_server.sh <server_num_per_host> <base_port> <scenario> [--head HOST:PORT] [--host ADDR]" >&2
  exit 2
fi
exec "$PY" -m simulation.services.agent_servers start "$@"
