#!/usr/bin/env bash
# Set up a virtual environment (PyTorch's CPU build unless TORCH_INDEX names another, see
# scripts/setup_venv.sh) and run the demo.
# Usage: bash scripts/demo.sh [cryogen demo options...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup_venv.sh
setup_venv data
cryogen demo --overwrite "$@"   # demo_out/ is rewritten on every run
