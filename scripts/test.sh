#!/usr/bin/env bash
# Set up a virtual environment, then check the code (ruff, mypy) and run the test suite.
# Usage: bash scripts/test.sh [pytest args...]
#   e.g. bash scripts/test.sh -m "not slow"   (the quick subset)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check torch==2.13.0
pip install -q --disable-pip-version-check -e '.[dev]'
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
