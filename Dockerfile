# syntax=docker/dockerfile:1
# The FlipKD service image: `flipkd serve` on 0.0.0.0:8000 with the shipped ATEC bundle by default.
#   docker build -t flipkd:cpu .                                   (CPU: torch's CPU wheel)
#   docker build --build-arg TORCH_FLAVOR=cuda -t flipkd:cuda .     (CUDA: torch's CUDA wheel; the driver
#                                                                   comes from the node's NVIDIA runtime)
# Model weights and the ONNX teacher are not in the image: they live on a volume at /var/lib/flipkd
# ($FLIPKD_HOME), filled by `flipkd provision` (an init step) and mounted read-only by the server.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TORCH_FLAVOR=cpu

FROM ${PYTHON_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

FROM venv AS torch-cpu
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

FROM venv AS torch-cuda
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu130 torch==2.13.0

# the torch stage picked by TORCH_FLAVOR is a stage of this file, not an image to tag
# hadolint ignore=DL3006
FROM torch-${TORCH_FLAVOR} AS build
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
COPY data/atec /opt/flipkd/data/atec
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
