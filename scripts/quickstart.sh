#!/usr/bin/env bash
# One command on a fresh machine: a virtual environment in .venv, the PyTorch build this machine
# needs (CUDA when `nvidia-smi` sees a GPU, else the CPU build), napari-d3ip with its GUI, then
# the main job (`d3ip demo`). Run from the repository: bash scripts/quickstart.sh [demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "napari-d3ip needs Python >= 3.10" >&2; exit 1; }
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if python -c 'import torch' 2>/dev/null; then
  echo "PyTorch $(python -c 'import torch; print(torch.__version__)') is already installed"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "a GPU is present: installing the CUDA build of PyTorch"
  pip install -q torch
else
  echo "no GPU: installing the CPU build of PyTorch"
  pip install -q torch==2.13.0 || pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
pip install -q ".[qt]"
echo "installed: $(d3ip --version); running the main job (d3ip demo $*)"
d3ip demo "$@"
