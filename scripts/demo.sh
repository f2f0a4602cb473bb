#!/usr/bin/env bash
# Set up a virtual environment with the CPU build of PyTorch and run the demo.
# Usage: bash scripts/demo.sh [cryogen demo options...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check torch==2.13.0
pip install -q --disable-pip-version-check -e '.[data]'
cryogen demo --overwrite "$@"   # demo_out/ is rewritten on every run
