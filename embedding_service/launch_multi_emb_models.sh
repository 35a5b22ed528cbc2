#!/usr/bin/env bash
# Start the servers described in emb_config.yml (or the bundled model on CPU) and write the manifest
# that `gensim run` reads. Usage: bash embedding_service/launch_multi_emb_models.sh [--config FILE] [--base-port PORT]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../simulation/scripts/python_env.sh"
exec "$PY" -m simulation.services.launch start embedding --config "embedding_service/emb_config.yml" "$@"
