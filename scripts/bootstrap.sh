#!/usr/bin/env bash
# Installs stylebridge and its test tools. torch is installed first, pinned, so that installing the package
# never pulls the newest CUDA build of torch (several GB) onto a CPU-only machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${STYLEBRIDGE_TORCH:-2.13.0}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '${TORCH_VERSION}' else 1)" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==${TORCH_VERSION}"
fi
"$PY" -m pip install --quiet -e ".[dev,onnx,align]"
