# syntax=docker/dockerfile:1
# The FlipKD service image: `flipkd serve` on 0.0.0.0:8000 with the shipped ATEC bundle by default.
#   docker build -t flipkd:cpu .                                   (CPU: torch's CPU wheel)
#   docker build --build-arg TORCH_FLAVOR=cuda -t flipkd:cuda .     (CUDA: torch's CUDA wheel; the driver
#                                                                   comes from the node's NVIDIA runtime)
# Behind a mirror: --build-arg PYTHON_IMAGE=<a Python 3.11 image with `python` on PATH>,
#   --build-arg PIP_INDEX_URL=<PyPI mirror> and --build-arg TORCH_INDEX_URL=<index holding torch's wheel>
#   (torch comes from TORCH_INDEX_URL alone, everything else, torch's own requirements too, from PIP_INDEX_URL).
#   scripts/image_check.sh builds this way from a debootstrapped base and a local torch wheel.
# Model weights are not in the image: they live on a volume at /var/lib/flipkd ($FLIPKD_HOME), filled by
# `flipkd provision` and `flipkd export-teachers` (the teachers the bundles carry, exported to ONNX; init
# steps) and mounted read-only by the server.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TORCH_FLAVOR=cpu

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_FLAVOR
ARG TORCH_INDEX_URL=""
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
RUN case "$TORCH_FLAVOR" in \
      cpu) wheels=https://download.pytorch.org/whl/cpu ;; \
      cuda) wheels=https://download.pytorch.org/whl/cu130 ;; \
      *) echo "TORCH_FLAVOR is cpu or cuda, not '$TORCH_FLAVOR'" >&2; exit 1 ;; \
    esac \
    && pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL:-$wheels}" torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY models ./models
COPY training ./training
COPY service ./service
RUN pip install --no-cache-dir .

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 flipkd \
    && useradd --system --uid 10001 --gid flipkd --no-create-home --home-dir /var/lib/flipkd flipkd \
    && mkdir -p /var/lib/flipkd \
    && chown flipkd:flipkd /var/lib/flipkd
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/tmp/hf \
    FLIPKD_HOME=/var/lib/flipkd \
    FLIPKD_HOST=0.0.0.0 \
    FLIPKD_PORT=8000
VOLUME ["/var/lib/flipkd"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 CMD ["flipkd", "healthcheck"]
ENTRYPOINT ["flipkd", "serve"]
