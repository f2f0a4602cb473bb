#!/usr/bin/env bash
# Set up a virtual environment (PyTorch's CPU build, see scripts/setup_venv.sh), then check
# the code (ruff, mypy) and run the test suite.
# Usage: bash scripts/test.sh [pytest args...]
#   e.g. bash scripts/test.sh -m "not slow"   (the quick subset)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_venv.sh
setup_venv dev
echo "ruff:" && ruff check src tests benchmarks && ruff format --check src tests benchmarks
echo "mypy:" && mypy
set +e
python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
