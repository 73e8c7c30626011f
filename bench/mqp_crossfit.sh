#!/usr/bin/env bash
# Medical Question Pairs dev: the transfer-set recipe with cross-fitted teacher scores. Trains the two
# fold teachers of the shipped MQP teacher's recipe (each on the pairs outside its fold, by first text),
# exports them, then distills configs/mqp-transfer.yaml with teacher_folds set.
# Usage: bash bench/mqp_crossfit.sh SEED [CORE]   (resumes: finished teachers and bundles are kept).
# Writes bench/results/mqp-transfer/crossfit-SEED/sweep.{md,jsonl}.
set -euo pipefail
seed=${1:?usage: bench/mqp_crossfit.sh SEED [CORE]}
core=${2:-1}
folds=()
for fold in 0 1; do
  teacher=runs/teacher-mqp-minilm-fold$fold
  bash bench/fold_teacher.sh "$core" "$fold" "$teacher" --data data/medical_question_pairs --base all-MiniLM-L6-v2 \
    --epochs 3 --lr 5e-5 --batch-size 32 --no-zero-shot --fp32 --folds 2
  folds+=("$teacher-onnx")
done
list=$(IFS=,; echo "${folds[*]}")
taskset -c "$core" .venv/bin/python bench/dev_sweep.py --config configs/mqp-transfer.yaml --runs runs/mqp-transfer \
  --threads 1 --fp32 --out "bench/results/mqp-transfer/crossfit-$seed" \
  --variant "transfer set, cross-fitted teachers, seed $seed=train.seed=$seed;transfer.seed=$seed;teacher_folds=[$list]"
