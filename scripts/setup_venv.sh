# Create .venv (if absent) and install PyTorch and this package into it, showing progress.
# Sourced by demo.sh and test.sh:  . scripts/setup_venv.sh && setup_venv EXTRAS
#
# PyTorch: an existing .venv keeps the torch it has.  Otherwise, on Linux, the CPU build
# (torch 2.13.0+cpu, a wheel of about 190 MB, from an index pip is already configured with,
# else from PyTorch's CPU index); a plain `pip install torch` would fetch the CUDA build, several
# GB.  Elsewhere (macOS, Windows) PyPI's torch is CPU-only.  For a GPU, choose the build:
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash scripts/demo.sh
TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu

install_torch() {
  if python -c "import torch" 2>/dev/null; then
    echo "PyTorch $(python -c 'import torch; print(torch.__version__)') is already in .venv: kept"
  elif [ -n "${TORCH_INDEX:-}" ]; then
    echo "Installing torch==$TORCH_VERSION from $TORCH_INDEX"
    pip install --progress-bar on "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX"
  elif [ "$(uname -s)" != "Linux" ]; then
    echo "Installing torch==$TORCH_VERSION (PyPI's build for $(uname -s) runs on the CPU)"
    pip install --progress-bar on "torch==$TORCH_VERSION"
  else
    echo "Installing the CPU build of PyTorch $TORCH_VERSION (a wheel of about 190 MB;"
    echo "set TORCH_INDEX to a CUDA index for a GPU build)"
    local log
    log=$(mktemp)
    if ! pip install --progress-bar on "torch==$TORCH_VERSION+cpu" 2>"$log"; then
      echo "Not on the configured package indexes: downloading it from $CPU_INDEX"
      pip install --progress-bar on "torch==$TORCH_VERSION+cpu" --extra-index-url "$CPU_INDEX"
    fi
    rm -f "$log"
  fi
}

setup_venv() {
  local extras=$1
  local py=${PYTHON:-python3}
  [ -d .venv ] || "$py" -m venv .venv
  . .venv/bin/activate
  install_torch
  echo "Installing cryogen-et with [$extras]"
  pip install --progress-bar on -e ".[$extras]"
}
