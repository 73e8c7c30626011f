#!/usr/bin/env bash
# Every row of one domain's results table with the same data, base model and training budget.
# Usage: bash bench/distill_results.sh mqp   (or atec); needs the domain's exported teacher (see the config).
# Rows already finished (their metrics.json / flipkd.json exists) are skipped, so the script resumes.
set -euo pipefail
domain=$1
config=configs/$domain.yaml
runs=runs/$domain
BIN=.venv/bin
mkdir -p "$runs" runs/logs
teacher=$(grep '^teacher:' "$config" | awk '{print $2}')
data=$(grep '^data:' "$config" | awk '{print $2}')

bundle() {  # name overrides...
  local name=$1; shift
  local args=()
  for override in "$@"; do args+=(--set "$override"); done
  [ -f "$runs/$name/flipkd.json" ] || $BIN/flipkd distill --config "$config" --out "$runs/$name" "${args[@]}" \
    2>&1 | tee "runs/logs/$domain-$name.log"
}
baseline() {  # kind
  [ -f "$runs/$1/metrics.json" ] || $BIN/flipkd baseline "$1" --config "$config" --out "$runs/$1" \
    2>&1 | tee "runs/logs/$domain-$1.log"
}

bundle flipkd
baseline zero-shot
bundle labels-only loss.kind=contrastive teacher=null
bundle no-mcl loss.mcl_weight=0
bundle no-filter filter.enabled=false
bundle no-dist loss.dist_weight=0
baseline sft

$BIN/python bench/distill_table.py --data "$data" --teacher "$teacher" \
  --baseline "LLM zero-shot=$runs/zero-shot" --baseline "LLM SFT (yes/no)=$runs/sft" \
  --bundle "FlipKD=$runs/flipkd" --bundle "student, labels only=$runs/labels-only" \
  --bundle "FlipKD w/o MCL=$runs/no-mcl" --bundle "FlipKD w/o filter=$runs/no-filter" \
  --bundle "FlipKD w/o L_dist=$runs/no-dist" --out "bench/results/$domain"
