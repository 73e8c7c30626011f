#!/usr/bin/env bash
# Packs what the GPU service benchmark needs on a machine with no network into build/gpu-pack/ (ignored,
# 29 MiB): Python 3.12 wheels of the serving stack that such a machine may lack or hold in another
# version, and the base model's config and tokenizer (not its weights: scripts/gpu_service_check.sh
# synthesises weights of the same shapes there, because 1.2 GB does not travel in one 64 MiB transfer).
# Usage: bash scripts/gpu_pack.sh   (from the repository root, after `make install`; needs the package index)
# PY_VERSION (default 3.12, the GPU image's Python) and PACK (default build/gpu-pack) pick the wheels and
# the folder: `PY_VERSION=3.11 PACK=build/gpu-pack-311` packs for this machine, to try the path here.
# Then copy the repository with build/gpu-pack to the GPU machine and run scripts/gpu_service_check.sh there.
set -euo pipefail
PACK=${PACK:-build/gpu-pack}
PY_VERSION=${PY_VERSION:-3.12}
BASE=qwen2.5-coder-0.5b-instruct
# Pinned as in this repository's environment; --no-deps: the GPU image already has torch, numpy,
# tokenizers, huggingface-hub, safetensors, aiohttp, prometheus-client and the rest.
WHEELS=(transformers==5.24.0 peft==0.21.2 fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4
        pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
        typing-extensions==4.16.0 annotated-types==0.8.0 annotated-doc==0.0.7 opentelemetry-api==1.45.2
        anyio==4.16.0 uvicorn==0.54.0 httptools==0.9.0 h11==0.16.0)
rm -rf "$PACK"
mkdir -p "$PACK/wheels" "$PACK/base"
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$PACK/wheels" "${WHEELS[@]}"
# the base model's folder as provisioned here, without its weights
BASE_DIR=$(.venv/bin/python -c "from flipkd.models.provision import provision; print(provision('$BASE'))")
for file in config.json tokenizer.json tokenizer_config.json; do
  cp "$BASE_DIR/$file" "$PACK/base/"
done
echo "$BASE" > "$PACK/base/NAME"
du -sh "$PACK"
