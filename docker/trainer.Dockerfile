# syntax=docker/dockerfile:1.7
# The GPU trainer: CUDA base, CUDA torch 2.13.0 (CUDA 13.0 wheels from PyPI), fbgemm-gpu 1.8.0, torchrec 1.8.0,
# triton 3.7.1 and the project, installed the way `make venv HSTU_DEVICE=cuda` does. Built from the repo root:
#   docker build -f docker/trainer.Dockerfile -t hstu-pipeline/trainer:0.1.0 .
# Run: torchrun --nproc-per-node N -m components.training.train ... (host driver >= 580 for CUDA 13).
# The base is pinned by exact tag; its digest was not verified when this was written (no registry access):
# pin it with --build-arg CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:<digest>.
# "base" is enough: the torch wheels bring cuDNN, cuBLAS and NCCL; the driver comes from the host.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
FROM ${CUDA_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HSTU_DATA_ROOT=/data \
    TRITON_CACHE_DIR=/tmp/triton-cache
# Ubuntu 24.04's Python is 3.12 (every wheel of the lock exists for cp312, checked with pip --dry-run).
# Triton compiles its launcher stubs at run time: it needs gcc and the Python headers in the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 hstu \
 && useradd --uid 10001 --gid 10001 --create-home --shell /bin/bash hstu \
 && mkdir -p /data /opt/hstu \
 && chown hstu:hstu /data
WORKDIR /opt/hstu

# Dependency layer: the CPU lock minus its CPU-only wheels, then the CUDA wheels (as the Makefile does).
COPY requirements/ requirements/
COPY pyproject.toml ./
RUN python3.12 -m venv /opt/venv \
 && grep -vE '^(torch|fbgemm[-_]gpu[-_]cpu|triton)==' requirements/cpu.lock > /tmp/cuda-base.lock \
 && pip install --no-deps -r /tmp/cuda-base.lock \
 && pip install -r requirements/cuda.txt \
 && rm /tmp/cuda-base.lock

# Source layer.
COPY components/ components/
COPY hstu_model/ hstu_model/
COPY kernels/ kernels/
COPY configs/ configs/
RUN pip install --no-deps --no-build-isolation . \
 && rm -rf build ./*.egg-info
USER 10001:10001
CMD ["python", "-m", "components.orchestration.cli", "--help"]
