#!/usr/bin/env bash
# Set up and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
# the browser test of report.html (tests/core/test_report_browser.py) drives Debian's Chromium through
# chromedriver; installed here when missing (as root with apt), else that test skips and says why (-rs lists
# every skip with its reason), or fails under UAD_REQUIRE_BROWSER=1 (set by CI: .ci/run)
if ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "test.sh: installing chromium failed; the browser test of report.html will skip (fail under UAD_REQUIRE_BROWSER=1)"
  else
    echo "test.sh: no chromedriver (apt-get install chromium chromium-driver); the browser test of report.html will skip (fail under UAD_REQUIRE_BROWSER=1)"
  fi
fi
.venv/bin/python -m ruff check .     # the linter (config: pyproject.toml [tool.ruff])
# two workers (UAD_TEST_WORKERS); a test file runs in one worker, so its module fixtures are built once
.venv/bin/python -m pytest -rs -n "${UAD_TEST_WORKERS:-2}" --dist loadfile tests "$@"
