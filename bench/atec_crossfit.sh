#!/usr/bin/env bash
# ATEC at full size with a teacher fine-tuned on all 31,304 training pairs (the recipe before used pairs
# 1-16,000), shipped as its rank-16 extraction, which is also what the student learns from; the labelled
# pairs' teacher scores come from two fold teachers (each trained on the pairs outside its fold, by first
# text), so that they are predictions, not recollections, and the dual-threshold filter means something.
# Usage: bash bench/atec_crossfit.sh [--echo] SEED [SEED...]   (resumes: finished teachers and bundles are
# kept). The students train configs/atec-full.yaml with these teachers; --echo trains configs/atec-echo.yaml
# (the shipped recipe: the same teachers, and echo reading: each text read twice, pooled over the second copy).
# Teachers train on both cores one after another (the folds side by side, one pinned thread each);
# each student trains alone on two threads. Writes bench/results/atec-crossfit/sweep.{md,jsonl}
# (atec-crossfit-echo with --echo).
set -euo pipefail
teacher=runs/teacher-atec-e5-all
config=configs/atec-full.yaml
teacher_overrides="teacher=$teacher-r16;teacher_folds=[$teacher-fold0-onnx,$teacher-fold1-onnx];" echo_label="" suffix=""
if [ "${1:-}" = "--echo" ]; then config=configs/atec-echo.yaml teacher_overrides="" echo_label=", echo" suffix="-echo"; shift; fi
[ $# -ge 1 ] || { echo "usage: bench/atec_crossfit.sh [--echo] SEED [SEED...]" >&2; exit 2; }
flipkd=.venv/bin/flipkd
if [ ! -f "$teacher-onnx/export.json" ]; then
  $flipkd --threads 2 train-teacher --data data/atec --base multilingual-e5-small --out "$teacher" --no-zero-shot
  $flipkd --threads 2 export-teacher --teacher "$teacher" --out "$teacher-onnx"
fi
[ -f "$teacher-r16/teacher.json" ] || $flipkd --threads 2 extract-teacher --teacher "$teacher" --rank 16 --out "$teacher-r16"
pids=()
for fold in 0 1; do
  bash bench/fold_teacher.sh "$fold" "$fold" "$teacher-fold$fold" --data data/atec --base multilingual-e5-small \
    --no-zero-shot --folds 2 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
variants=()
for seed in "$@"; do
  variants+=(--variant "all-pairs teacher (rank 16), cross-fitted$echo_label, seed $seed=${teacher_overrides}train.seed=$seed")
done
.venv/bin/python bench/dev_sweep.py --config "$config" --runs "runs/atec-crossfit$suffix" --threads 2 \
  --out "bench/results/atec-crossfit$suffix" "${variants[@]}"
