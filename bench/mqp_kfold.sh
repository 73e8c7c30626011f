#!/usr/bin/env bash
# Medical Question Pairs: a 3-fold estimate of the shipped recipe (configs/mqp-echo.yaml) against the
# teacher it learns from, over the 2,696 pairs of train and dev instead of the 196 of test (which it never
# reads). Per fold (bench/kfold_split.py): the teacher's recorded recipe (MiniLM fully fine-tuned, then its
# rank-32 extraction, as the shipped bundle's), then the echo student distilled from it; both are
# calibrated on the fold's dev half and scored on its test half, pooled by bench/paired_test.py.
# Usage: bash bench/mqp_kfold.sh [SEED]   (resumes: finished teachers and students are kept; two threads)
set -euo pipefail
seed=${1:-13}
root=runs/mqp-kfold
out=bench/results/mqp-kfold
.venv/bin/python bench/kfold_split.py --data data/medical_question_pairs --folds 3 --out $root
variants=() bundles=()
for fold in 0 1 2; do
  teacher=$root/teacher-fold$fold
  [ -f $teacher/metrics.json ] || .venv/bin/flipkd --threads 2 train-teacher --data $root/fold$fold \
    --base all-MiniLM-L6-v2 --out $teacher --epochs 3 --max-length 64 --lr 5e-5 --no-zero-shot
  [ -f $teacher-r32/teacher.json ] || .venv/bin/flipkd --threads 2 extract-teacher --teacher $teacher --rank 32 \
    --out $teacher-r32
  name="fold $fold, seed $seed"
  variants+=(--variant "$name=data=$root/fold$fold;teacher=$teacher-r32;train.seed=$seed;transfer.seed=$seed")
  bundles+=(--bundle "$root/fold-$fold--seed-$seed" --data "$root/fold$fold/test.jsonl")
done
.venv/bin/python bench/dev_sweep.py --config configs/mqp-echo.yaml --runs $root --threads 2 --out $out/seed-$seed \
  "${variants[@]}"
.venv/bin/python bench/paired_test.py --threads 2 --out $out/seed-$seed "${bundles[@]}"
