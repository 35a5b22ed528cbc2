#!/usr/bin/env bash
# Start the servers described in llm_config.yml (or the bundled model on CPU) and write the manifest
# that `gensim run` reads. Usage: bash llm_service/launch_all_llm.sh [--config FILE] [--base-port PORT]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../simulation/scripts/python_env.sh"
exec "$PY" -m simulation.services.launch start llm --config "llm_service/llm_config.yml" "$@"
