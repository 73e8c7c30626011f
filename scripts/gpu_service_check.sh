#!/usr/bin/env bash
# The service measured on a GPU machine with no network: installs build/gpu-pack's wheels and this
# repository into a private site folder, writes the base model with random weights of its real shapes
# (bench/synthetic_base.py), then runs bench/gpu_service.py (bare student vs the service under load,
# one and several front ends) into $OUT (else build/gpu-out). Extra arguments go to bench/gpu_service.py.
# Usage: bash scripts/gpu_pack.sh here, then on the GPU machine: bash scripts/gpu_service_check.sh
# PYTHON (default python3) is the interpreter that holds torch there.
set -euo pipefail
PYTHON=${PYTHON:-python3}
PACK=${PACK:-build/gpu-pack}
DEST=${OUT:-build/gpu-out}
SITE=${SITE:-/tmp/flipkd-site}
test -d "$PACK/wheels" || { echo "no $PACK: run scripts/gpu_pack.sh first" >&2; exit 2; }
mkdir -p "$DEST"
started=$(date +%s)
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  "$PACK"/wheels/*.whl
"$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .
export PYTHONPATH=$SITE FLIPKD_HOME=${FLIPKD_HOME:-/tmp/flipkd-home} PYTHONUNBUFFERED=1
"$PYTHON" bench/synthetic_base.py --base "$PACK/base"
echo "installed and synthesised in $(( $(date +%s) - started )) s"
nvidia-smi > "$DEST/nvidia-smi.txt" 2>&1 || true
"$PYTHON" bench/gpu_service.py --data data/atec/test.jsonl --out "$DEST" "$@"
