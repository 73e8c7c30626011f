#!/usr/bin/env bash
# Every row of one domain's results table with the same data, base model and training budget.
# Usage: bash bench/distill_results.sh mqp   (or atec); needs the domain's exported teacher (see the config).
# THREADS (default 2) sets torch's threads; PIN (for example "taskset -c 0") pins the runs to cores.
# Rows already finished (their metrics.json / flipkd.json exists) are skipped, so the script resumes.
# When FlipKD's filter drops no pair, "w/o filter" would train on identical data with an identical seed,
# so it is not run again and the table shows FlipKD's own figures for it, marked as such.
set -euo pipefail
domain=$1
config=configs/$domain.yaml
runs=runs/$domain
BIN=.venv/bin
THREADS=${THREADS:-2}
PIN=${PIN:-}
mkdir -p "$runs" runs/logs
teacher=$(grep '^teacher:' "$config" | awk '{print $2}')
data=$(grep '^data:' "$config" | awk '{print $2}')

bundle() {  # name overrides...
  local name=$1; shift
  local args=()
  for override in "$@"; do args+=(--set "$override"); done
  [ -f "$runs/$name/flipkd.json" ] || $PIN $BIN/flipkd --threads "$THREADS" distill --config "$config" \
    --out "$runs/$name" "${args[@]}" 2>&1 | tee "runs/logs/$domain-$name.log"
}
baseline() {  # kind
  [ -f "$runs/$1/metrics.json" ] || $PIN $BIN/flipkd --threads "$THREADS" baseline "$1" --config "$config" \
    --out "$runs/$1" 2>&1 | tee "runs/logs/$domain-$1.log"
}
filter_dropped() {  # pairs FlipKD's filter dropped
  $BIN/python -c "import json,sys; f=json.load(open(sys.argv[1]))['filter']; \
print(f['positives_dropped'] + f['negatives_dropped'])" "$runs/flipkd/flipkd.json"
}

bundle flipkd
baseline zero-shot
bundle labels-only loss.kind=contrastive teacher=null
baseline sft
bundle no-mcl loss.mcl_weight=0
bundle no-dist loss.dist_weight=0
no_filter="FlipKD w/o filter=$runs/no-filter"
if [ "$(filter_dropped)" = 0 ]; then
  no_filter="FlipKD w/o filter (same run as FlipKD: the filter dropped 0 pairs)=$runs/flipkd"
else
  bundle no-filter filter.enabled=false
fi

$PIN $BIN/python bench/distill_table.py --threads "$THREADS" --data "$data" --teacher "$teacher" \
  --baseline "LLM zero-shot=$runs/zero-shot" --baseline "LLM SFT (yes/no)=$runs/sft" \
  --bundle "FlipKD=$runs/flipkd" --bundle "student, labels only=$runs/labels-only" \
  --bundle "FlipKD w/o MCL=$runs/no-mcl" --bundle "$no_filter" \
  --bundle "FlipKD w/o L_dist=$runs/no-dist" --out "bench/results/$domain"
