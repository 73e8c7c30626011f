#!/usr/bin/env bash
# One cross-fitting fold teacher: trains it on the pairs outside fold FOLD (by first text) and exports it
# to OUT-onnx, both pinned to CPU core CORE on one thread; does nothing when OUT-onnx/export.json exists.
# Usage: bash bench/fold_teacher.sh CORE FOLD OUT TRAIN-TEACHER-ARGS...   (the --folds count among them)
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bench/fold_teacher.sh CORE FOLD OUT TRAIN-TEACHER-ARGS..." >&2; exit 2; }
core=$1 fold=$2 out=$3
shift 3
[ -f "$out-onnx/export.json" ] && exit 0
taskset -c "$core" .venv/bin/flipkd --threads 1 train-teacher "$@" --fold "$fold" --out "$out"
taskset -c "$core" .venv/bin/flipkd --threads 1 export-teacher --teacher "$out" --out "$out-onnx"
