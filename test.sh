#!/usr/bin/env bash
# Set up and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
.venv/bin/python -m ruff check .     # the linter (config: pyproject.toml [tool.ruff])
.venv/bin/python -m pytest tests "$@"
