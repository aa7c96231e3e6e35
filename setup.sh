#!/usr/bin/env bash
# Set up .venv with the pinned requirements and this package (idempotent; re-run after requirements change).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.requirements.sha256
WANT="$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  # compat mode puts the repository root on sys.path (a .pth), so this project's regular `data` package
  # always wins over the namespace folder `data/` that deepbet's wheel installs into site-packages
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
  echo "$WANT" > "$STAMP"
fi
