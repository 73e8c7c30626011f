#!/usr/bin/env bash
# Medical Question Pairs dev: the transfer-set recipe (configs/mqp-transfer.yaml) against the same run
# without the transfer set, per seed, one run per core at once (fp32: see docs/training.md).
# Usage: bash bench/mqp_transfer_sweep.sh SEED   (needs the MQP teacher in runs/teacher-mqp-minilm-onnx;
# resumes where it stopped). Writes bench/results/mqp-transfer/seed-SEED/sweep.{md,jsonl}.
set -euo pipefail
seed=${1:?usage: bench/mqp_transfer_sweep.sh SEED}
sweep=(.venv/bin/python bench/dev_sweep.py --config configs/mqp-transfer.yaml --runs runs/mqp-transfer
       --threads 1 --fp32)
with="transfer set, seed $seed=train.seed=$seed;transfer.seed=$seed"
without="no transfer set, seed $seed=train.seed=$seed;transfer.enabled=false"
taskset -c 0 "${sweep[@]}" --variant "$with" --out "runs/mqp-transfer/with-$seed" &
taskset -c 1 "${sweep[@]}" --variant "$without" --out "runs/mqp-transfer/without-$seed" &
wait
"${sweep[@]}" --variant "$with" --variant "$without" --out "bench/results/mqp-transfer/seed-$seed"
