#!/usr/bin/env bash
# Fine-tunes and exports the four reported teachers, then writes the results table.
# Usage: bash bench/teacher_results.sh   (from the repository root, after `make install`)
# THREADS (default 2) sets torch's threads; PIN (for example "taskset -c 0") pins the runs to cores.
set -euo pipefail
BIN=.venv/bin
THREADS=${THREADS:-2}
PIN=${PIN:-}
mkdir -p runs/logs
run() {  # name data base epochs max_length lr [extra train-teacher options]
  local name=$1 data=$2 base=$3 epochs=$4 max_length=$5 lr=$6
  shift 6
  if [ ! -f "runs/teacher-$name/metrics.json" ]; then
    $PIN $BIN/flipkd --threads "$THREADS" train-teacher --data "data/$data" --base "$base" \
      --out "runs/teacher-$name" --epochs "$epochs" --max-length "$max_length" --lr "$lr" "$@" \
      2>&1 | tee "runs/logs/teacher-$name.log"
  fi
  if [ ! -f "runs/teacher-$name-onnx/export.json" ]; then
    # exits non-zero when int8 misses its tolerance; export.json records it and the run goes on
    $PIN $BIN/flipkd --threads "$THREADS" export-teacher --teacher "runs/teacher-$name" \
      --out "runs/teacher-$name-onnx" --int8 2>&1 | tee "runs/logs/export-$name.log" || true
  fi
}
run mqp-minilm medical_question_pairs all-MiniLM-L6-v2 3 64 5e-5
run mqp-e5 medical_question_pairs multilingual-e5-small 3 64 5e-5
run nfcorpus-minilm nfcorpus all-MiniLM-L6-v2 1 128 5e-5
run atec-e5 atec multilingual-e5-small 1 64 3e-5 --limit 16000
$BIN/python bench/teacher_table.py runs/teacher-{atec-e5,mqp-minilm,mqp-e5,nfcorpus-minilm} \
  --out bench/results/teacher_results.md
