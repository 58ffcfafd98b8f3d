#!/usr/bin/env bash
# The test command: lint, format check, type check, import contracts and the full test suite
# (PostgreSQL included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The dashboard's browser tests drive Debian's Chromium (Playwright downloads no browser here).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy service predictors latency_tables
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
