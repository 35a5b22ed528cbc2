# Sourced by the service scripts: ROOT is the checkout, PY the project's Python (GENSIM_VENV or
# .venv, else python3), and the working directory is ROOT.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${GENSIM_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || PY=python3
cd "$ROOT"
