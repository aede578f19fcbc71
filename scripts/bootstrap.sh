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
"$PY" -m pip install --quiet -e ".[dev,onnx,align,studio]"
# The studio's browser tests drive Debian's chromium (Playwright cannot download its own browser offline). Installed
# when apt can; where it cannot, those tests skip and say why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends chromium >/dev/null 2>&1; } \
    || echo "bootstrap: could not install chromium with apt; the studio's browser tests will be skipped" >&2
fi
