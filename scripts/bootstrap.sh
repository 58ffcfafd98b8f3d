#!/usr/bin/env bash
# Creates .venv (if missing) with the pinned CPU torch installed before anything else, so pip never
# resolves a CUDA build, then installs hwnas with its test extras and the test plugin package, at the
# versions pinned in constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="torch==2.13.0"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    .venv/bin/pip install -q "$TORCH_SPEC"
fi
.venv/bin/pip install -q -c constraints.txt -e ".[test]" -e tests/plugin_pkg
