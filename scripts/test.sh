#!/usr/bin/env bash
# The test command: lint, format check, type check, import contracts and the full test suite
# (PostgreSQL included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy service predictors latency_tables
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
