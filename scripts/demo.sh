#!/usr/bin/env bash
# The main job: start the service on SQLite, run a real search on the built-in supernet, show the front.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/hwnas demo "$@"
