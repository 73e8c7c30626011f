#!/usr/bin/env bash
# Build the CPU service image on this machine and run it the way a cluster would, then check it from outside.
#
#   sudo bash scripts/image_check.sh      (root: podman, runc and debootstrap are Debian packages)
#
# 1. A Python 3.11 base from `debootstrap bookworm` (python3, python3-venv, python-is-python3), imported as
#    localhost/flipkd-python:3.11-bookworm (kept between runs).
# 2. `podman build` of the Dockerfile with PYTHON_IMAGE set to that base and TORCH_INDEX_URL set to a
#    PEP 503 index served on loopback from a local torch wheel (TORCH_WHEEL, default: /opt/wheels); the other
#    packages come from PIP_INDEX_URL (default PyPI).
# 3. `flipkd provision` (the student's and the teacher's bases) into a named volume, then `flipkd export-teachers`
#    (the teacher the ATEC bundle carries, exported to ONNX there), as the image's non-root user with a read-only
#    root filesystem: the chart's init containers. Nothing is trained.
# 4. The server as uid 10001 with a read-only root filesystem, a tmpfs /tmp and the volume mounted read-only;
#    from the host: /readyz (student and teacher attached), /match, /metrics, the image's health check, and
#    SIGTERM (`podman stop`) ending the
#    process cleanly within its grace period.
# Writes bench/results/image_check.json (image size, build, provisioning and start-up times).
set -euo pipefail

[[ $# -eq 0 ]] || { echo "usage: scripts/image_check.sh" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${FLIPKD_IMAGE_WORK:-/var/tmp/flipkd-image-check}
base_image=localhost/flipkd-python:3.11-bookworm
image=localhost/flipkd:cpu
volume=flipkd-image-check-home
container=flipkd-image-check
port=${FLIPKD_IMAGE_PORT:-18000}
index_port=${FLIPKD_INDEX_PORT:-18765}
torch_wheel=${TORCH_WHEEL:-$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1)}
results=$repo/bench/results/image_check.json

for tool in podman runc debootstrap curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install podman runc debootstrap curl" >&2; exit 1; }
done
[[ -f "$torch_wheel" ]] || { echo "no torch wheel: set TORCH_WHEEL to torch-2.13.0+cpu-...whl" >&2; exit 1; }
mkdir -p "$work"

# crun fails on some kernels' cgroup layouts and a container's default ulimits may exceed the host's:
# this run uses runc and no default ulimits, without touching /etc.
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf

stamp() { date +%s.%N; }
elapsed() { python3 -c "print(round($2 - $1, 1))"; }

cleanup() {
  podman rm -f "$container" >/dev/null 2>&1 || true
  [[ -n "${index_pid:-}" ]] && kill "$index_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== base image $base_image"
if ! podman image exists "$base_image"; then
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$work/rootfs" http://deb.debian.org/debian
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*
  # the base trusts what this machine trusts (a TLS-inspecting proxy's CA too), and pip reads that bundle
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["python3"]' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$base_image"
fi

echo "== local torch index for $(basename "$torch_wheel")"
rm -rf "$work/index" && mkdir -p "$work/index/simple/torch"
cp --reflink=auto "$torch_wheel" "$work/index/simple/torch/"
wheel_name=$(basename "$torch_wheel")
printf '<!DOCTYPE html><html><body><a href="%s">%s</a></body></html>\n' \
  "${wheel_name//+/%2B}" "$wheel_name" > "$work/index/simple/torch/index.html"
python3 -m http.server "$index_port" --bind 127.0.0.1 --directory "$work/index" >"$work/index.log" 2>&1 &
index_pid=$!
sleep 1

echo "== build $image"
build_start=$(stamp)
podman build --format docker --network host \
  --build-arg PYTHON_IMAGE="$base_image" \
  --build-arg TORCH_INDEX_URL="http://127.0.0.1:$index_port/simple" \
  ${PIP_INDEX_URL:+--build-arg PIP_INDEX_URL="$PIP_INDEX_URL"} \
  -t "$image" "$repo"
build_seconds=$(elapsed "$build_start" "$(stamp)")
image_bytes=$(podman image inspect --format '{{.Size}}' "$image")

echo "== provision into volume $volume"
podman volume rm -f "$volume" >/dev/null 2>&1 || true
podman volume create "$volume" >/dev/null
run_flags=(--read-only --tmpfs /tmp:rw,size=2g --user 10001:10001 --security-opt no-new-privileges --cap-drop ALL)
provision_start=$(stamp)
podman run --rm "${run_flags[@]}" --network host ${PIP_INDEX_URL:+-e PIP_INDEX_URL="$PIP_INDEX_URL"} \
  -v "$volume:/var/lib/flipkd" --entrypoint flipkd "$image" provision qwen2.5-coder-0.5b-instruct \
  multilingual-e5-small
provision_seconds=$(elapsed "$provision_start" "$(stamp)")
export_start=$(stamp)
podman run --rm "${run_flags[@]}" -v "$volume:/var/lib/flipkd" --entrypoint flipkd "$image" \
  export-teachers --bundle atec | tee "$work/export-teachers.jsonl"
export_seconds=$(elapsed "$export_start" "$(stamp)")

echo "== serve (read-only root, tmpfs /tmp, uid 10001, volume read-only)"
start=$(stamp)
podman run -d --name "$container" "${run_flags[@]}" -p "127.0.0.1:$port:8000" \
  -v "$volume:/var/lib/flipkd:ro" "$image" >/dev/null
ready=""
for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >"$work/readyz.json" 2>/dev/null; then ready=1; break; fi
  if [[ "$(podman inspect --format '{{.State.Running}}' "$container")" != "true" ]]; then break; fi
  sleep 0.5
done
ready_seconds=$(elapsed "$start" "$(stamp)")
if [[ -z "$ready" ]]; then podman logs "$container" | tail -40; echo "FAIL: never ready" >&2; exit 1; fi
echo "ready after ${ready_seconds}s: $(cat "$work/readyz.json")"
for _ in $(seq 1 120); do  # the teacher attaches beside the student; give it a minute more
  curl -fsS "http://127.0.0.1:$port/readyz" >"$work/readyz.json"
  grep -q '"teacher":true' "$work/readyz.json" && break
  sleep 0.5
done
grep -q '"teacher":true' "$work/readyz.json" || { echo "FAIL: the bundle's teacher never attached" >&2; exit 1; }

curl -fsS -X POST "http://127.0.0.1:$port/match" -H 'content-type: application/json' \
  -d '{"pairs": [{"text_a": "花呗怎么还款", "text_b": "花呗如何还钱"}]}' >"$work/match.json"
python3 - "$work/match.json" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
result = answer["results"][0]
assert -1.0 <= result["similarity"] <= 1.0 and isinstance(result["match"], bool), answer
assert answer["served_by"] in ("student", "teacher"), answer
print("match:", result)
EOF
curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
grep -q '^flipkd_requests_total{' "$work/metrics.txt" || { echo "FAIL: no flipkd_requests_total in /metrics" >&2; exit 1; }
podman healthcheck run "$container" && echo "health check: healthy"

echo "== SIGTERM"
stop_start=$(stamp)
podman stop --time 30 "$container" >/dev/null
stop_seconds=$(elapsed "$stop_start" "$(stamp)")
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
podman logs "$container" >"$work/server.log" 2>&1
[[ "$exit_code" == 0 ]] || { tail -20 "$work/server.log"; echo "FAIL: exit code $exit_code after SIGTERM" >&2; exit 1; }
grep -q "Finished server process" "$work/server.log" || { echo "FAIL: no clean uvicorn shutdown in the log" >&2; exit 1; }

python3 - "$results" <<EOF
import json, sys
json.dump({
    "image": "$image", "base": "$base_image (debootstrap bookworm minbase + python3.11)",
    "image_mib": round($image_bytes / 2**20),
    "build_seconds": $build_seconds, "provision_seconds": $provision_seconds,
    "export_teachers_seconds": $export_seconds,
    "ready_seconds": $ready_seconds, "sigterm_stop_seconds": $stop_seconds, "exit_code": $exit_code,
    "teacher": "carried by the atec bundle, exported by flipkd export-teachers",
    "readyz": json.load(open("$work/readyz.json")),
    "machine": "$(nproc) cores, $(uname -r)",
}, open(sys.argv[1], "w"), indent=2)
EOF
echo "PASS: $(cat "$results")"
