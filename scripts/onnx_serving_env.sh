#!/usr/bin/env bash
# A serving environment without torch: build it, measure it, and serve the default bundle from it.
#
#   bash scripts/onnx_serving_env.sh [WORK_DIR]      (default: /var/tmp/flipkd-onnx-env)
#
# 1. A fresh venv with scripts/serve-onnx-requirements.txt and this package (--no-deps): no torch,
#    transformers or peft. Its size is printed beside the full environment's torch alone.
# 2. With the full environment (.venv), the default bundle's student graphs are exported into
#    $FLIPKD_HOME (once; `flipkd export-student`). An exported ONNX teacher is served too when
#    FLIPKD_TEACHER names one.
# 3. `flipkd serve` from the torch-free venv with FLIPKD_STUDENT_RUNTIME=onnx-int8: /readyz, a /match
#    answered by the student, /info saying torch is not loaded, then SIGTERM.
# Writes bench/results/onnx_serving_env.json.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/var/tmp/flipkd-onnx-env}
full=.venv/bin/python
rm -rf "$work" && mkdir -p "$work"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -r scripts/serve-onnx-requirements.txt
rm -rf build  # setuptools' build folder: a stale copy there would be installed with the package
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-deps .
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then echo "torch is importable in $work/venv" >&2; exit 1; fi
env_mib=$(du -sm "$work/venv" | cut -f1)
torch_mib=$(du -sm "$($full -c 'import torch, os; print(os.path.dirname(torch.__file__))')" | cut -f1)
full_mib=$(du -sm "$(dirname "$(dirname "$full")")" | cut -f1)

$full -m flipkd export-student --bundle atec > "$work/export.json"
port=$($full -c 'from flipkd.service.server import free_port; print(free_port())')
FLIPKD_STUDENT_RUNTIME=onnx-int8 FLIPKD_PORT=$port \
  "$work/venv/bin/flipkd" serve > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
started=$(date +%s.%N)
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
  kill -0 $server 2>/dev/null || { echo "the server exited: $(cat "$work/serve.log")" >&2; exit 1; }
  sleep 0.5
done
ready_s=$(echo "$(date +%s.%N) - $started" | bc)
match=$(curl -sf "http://127.0.0.1:$port/match" -H 'Content-Type: application/json' \
  -d '{"pair": {"text_a": "花呗怎么还款", "text_b": "花呗如何还钱"}}')
info=$(curl -sf "http://127.0.0.1:$port/info")
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
kill -TERM $server
status=0 && wait $server || status=$?
trap - EXIT
# uvicorn re-raises SIGTERM after a clean shutdown: 143 = 128 + SIGTERM
[ $status -eq 0 ] || [ $status -eq 143 ] || { echo "the server exited with $status" >&2; exit 1; }
echo "$match" | grep -q '"served_by":"student"' || { echo "not answered by the student: $match" >&2; exit 1; }
echo "$info" | grep -q '"torch":null' || { echo "torch was loaded: $info" >&2; exit 1; }
cat > bench/results/onnx_serving_env.json <<JSON
{"command": "bash scripts/onnx_serving_env.sh", "torch_free_venv_mib": $env_mib,
 "full_venv_mib": $full_mib, "torch_package_mib": $torch_mib, "ready_s": $ready_s,
 "server_rss_mib": $((rss_kib / 1024)), "teacher": "${FLIPKD_TEACHER:-}", "match": $match}
JSON
cat bench/results/onnx_serving_env.json
