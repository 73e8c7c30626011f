#!/usr/bin/env bash
# FlipKD settings tried on Medical Question Pairs dev: the two ATEC dev-sweep winners that do not depend
# on the language (learning rate 1e-3; layers 4-7), each from configs/mqp.yaml, one per core at once.
# Usage: bash bench/mqp_dev_sweep.sh   (needs runs/mqp/flipkd, the configuration as is, and the MQP
# teacher; resumes where it stopped). Writes bench/results/mqp-dev-sweep/sweep.{md,jsonl}.
set -euo pipefail
sweep=(.venv/bin/python bench/dev_sweep.py --config configs/mqp.yaml --runs runs/mqp-sweep --threads 1)
lr="learning rate 1e-3=train.lr=0.001"
layers="layers 4-7=encoder.layers=[4,5,6,7]"
taskset -c 0 "${sweep[@]}" --variant "$lr" --out runs/mqp-sweep/lr &
taskset -c 1 "${sweep[@]}" --variant "$layers" --out runs/mqp-sweep/layers &
wait
"${sweep[@]}" --reference "layers 8-11, lr 3e-4 (configs/mqp.yaml)=runs/mqp/flipkd" --variant "$lr" \
  --variant "$layers" --out bench/results/mqp-dev-sweep
