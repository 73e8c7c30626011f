#!/usr/bin/env bash
# Time `make serve`'s first run: a fresh clone of this repository, an empty model cache ($FLIPKD_HOME)
# and no .venv, until /readyz answers 200 on port 8000, until the first /match is answered, and until the
# teacher the bundle carries is attached (/readyz lists it up: exported to ONNX on first use, then loaded).
# Every line make prints is stamped with the epoch second it arrived (the step times come from the stamps
# of the step's first line). Then a second start in the same clone (everything installed and cached) is
# timed the same way. Stops everything it started (the server and the teacher export it runs).
# Usage: bench/first_run.sh [WORKDIR]   (default /tmp/flipkd-first-run; it is deleted first)
# Writes WORKDIR/make.log, WORKDIR/make-again.log and prints the seconds to ready, to the first answer and
# to the teacher.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-/tmp/flipkd-first-run}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/clone"
export FLIPKD_HOME="$work/home"
cd "$work/clone"
pair='{"pair": {"text_a": "花呗怎么还款", "text_b": "花呗如何还钱"}}'

teacher_up='import json, sys; d = json.load(sys.stdin); sys.exit(not all(x["teacher"] for x in d["domains"].values()))'

timed_start() {  # $1: log name; starts `make serve` in its own process group, times ready, answer, teacher
  local start ready answered attached
  start=$(date +%s.%N)
  setsid bash -c 'make serve 2>&1 | python3 -u -c "
import sys, time
for line in sys.stdin:
    print(f\"{time.time():.1f} {line.rstrip()}\", flush=True)"' > "$work/$1" &
  local group=$!
  until curl -sf localhost:8000/readyz > /dev/null; do sleep 1; done
  ready=$(date +%s.%N)
  curl -sf localhost:8000/match -H 'content-type: application/json' -d "$pair" > "$work/$1.answer"
  answered=$(date +%s.%N)
  until curl -s localhost:8000/readyz | python3 -c "$teacher_up" 2> /dev/null; do sleep 1; done
  attached=$(date +%s.%N)
  python3 -c "print(f'$1: ready after {$ready - $start:.1f} s, first /match answered after {$answered - $start:.1f} s,'
              f' teacher attached after {$attached - $start:.1f} s')"
  curl -s localhost:8000/readyz; echo
  kill -TERM -- -"$group" 2> /dev/null || true
  while curl -sf localhost:8000/healthz > /dev/null; do sleep 1; done
  sleep 2
}

timed_start make.log
timed_start make-again.log
