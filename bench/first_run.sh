#!/usr/bin/env bash
# Time `make serve`'s first run: a fresh clone of this repository, an empty model cache ($FLIPKD_HOME)
# and no .venv, until /readyz answers 200 on port 8000. Every line make prints is stamped with the
# epoch second it arrived (the step times come from the stamps of the step's first line).
# Usage: bench/first_run.sh [WORKDIR]   (default /tmp/flipkd-first-run; it is deleted first)
# Writes WORKDIR/make.log and prints the seconds to ready. Stops the server afterwards.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-/tmp/flipkd-first-run}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/clone"
export FLIPKD_HOME="$work/home"
cd "$work/clone"
start=$(date +%s.%N)
(make serve 2>&1 | python3 -u -c '
import sys, time
for line in sys.stdin:
    print(f"{time.time():.1f} {line.rstrip()}", flush=True)' > "$work/make.log") &
until curl -sf localhost:8000/readyz > /dev/null; do sleep 1; done
ready=$(date +%s.%N)
python3 -c "print(f'ready after {$ready - $start:.1f} s')"
curl -s localhost:8000/readyz; echo
pkill -f "flipkd serve --teacher runs/teacher-atec-e5-onnx" || true
