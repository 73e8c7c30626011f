#!/usr/bin/env bash
# FlipKD settings tried on ATEC's dev pairs, on one core: one factor at a time from
# configs/atec-sweep-base.yaml, then the best factors together and the best with another seed (how
# much of a difference the seed makes).
# Usage: bash bench/atec_dev_sweep.sh   (PIN, for example "taskset -c 0", pins it to a core)
# Needs the base run (flipkd distill --config configs/atec-sweep-base.yaml --out runs/atec-layers8-11/flipkd)
# and the ATEC teacher; resumes where it stopped.
set -euo pipefail
PIN=${PIN:-}
$PIN .venv/bin/python bench/dev_sweep.py --config configs/atec-sweep-base.yaml --runs runs/atec-sweep --threads 1 \
  --reference "layers 8-11, rank 16 (sweep base)=runs/atec-layers8-11/flipkd" \
  --variant "layers 4-7=encoder.layers=[4,5,6,7]" \
  --variant "layers 12-15=encoder.layers=[12,13,14,15]" \
  --variant "layers 16-19=encoder.layers=[16,17,18,19]" \
  --variant "rank 8=encoder.rank=8;encoder.alpha=16" \
  --variant "rank 32=encoder.rank=32;encoder.alpha=64" \
  --variant "MCL weight 2=loss.mcl_weight=2" \
  --variant "L_dist weight 2=loss.dist_weight=2" \
  --variant "margin 0.1=loss.margin=0.1" \
  --variant "margin 0.4=loss.margin=0.4" \
  --variant "instruction template=encoder.template='客服问题：{text}'" \
  --variant "last token, one-word prompt=encoder.pooling=last;encoder.template='这句话：“{text}”用一个词概括是：“'" \
  --variant "learning rate 1e-3=train.lr=0.001" \
  --variant "layers 20-23=encoder.layers=[20,21,22,23]" \
  --variant "filter quantile 0.1=filter.quantile=0.1" \
  --variant "gap scale 2=loss.gap_scale=2" \
  --variant "lr 1e-3, layers 4-7, instruction template=train.lr=0.001;encoder.layers=[4,5,6,7];encoder.template='客服问题：{text}'" \
  --variant "lr 1e-3, seed 14=train.lr=0.001;train.seed=14" \
  --out bench/results/atec-dev
