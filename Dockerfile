# syntax=docker/dockerfile:1
# The operator image: `python -m inference_operator` as UID 65532, with only the project's wheel and its
# runtime dependencies (pyproject.toml [project.dependencies]); no compiler, no dev extras, no sources.
#   docker build -t ghcr.io/inference-operator/inference-operator:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The project's wheel plus a wheel of every runtime dependency, for an offline install below.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied, so they leave no layer behind.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels inference-operator
USER 65532:65532
# kopf's health endpoint (/healthz) and the Prometheus /metrics endpoint.
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "inference_operator"]
