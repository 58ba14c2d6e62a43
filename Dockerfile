# syntax=docker/dockerfile:1
# One image for every process of the project, as UID 65532 with a read-only root filesystem possible:
#   python -m inference_operator           the operator (the entrypoint)
#   python -m inference_operator.gateway   the gateway (the chart's gateway Deployment sets this command)
#   python -m inference_operator.batch     a batch Job's runner (the operator's default batch image)
#   python -m inference_operator.cloudapi  the cloud API server
# Only the project's wheel and its runtime dependencies at the versions of hack/image-constraints.txt, in a
# virtual environment at /opt/inference-operator; no compiler, no pip, no sources, no pip cache.
# `make images` builds it on a Debian base of its own (hack/images.sh); with a Docker engine:
#   docker build -t inference-operator:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# A CA bundle for pip to trust (a host's, mounted into the build by hack/images.sh; never in the image).
ARG PIP_CERT=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT=/src/hack/image-constraints.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hack/image-constraints.txt hack/
COPY operator/ operator/
# kubernetes/aio is an asyncio copy of the whole client (68 MB) that nothing here imports: the image only
# loads kubernetes.config, in the kubeconfig helper process (kube/kubeconfig.py).
RUN python3 -m venv /opt/inference-operator \
 && /opt/inference-operator/bin/pip install ${PIP_CERT:+--cert "$PIP_CERT"} . \
 && /opt/inference-operator/bin/pip uninstall -y -q pip setuptools \
 && rm -rf /opt/inference-operator/lib/python3*/site-packages/kubernetes/aio

FROM ${PYTHON_IMAGE}
# source, revision and version are given by the build (`--label`, hack/images.sh), not by ARGs here: a cached
# layer of a LABEL step is reused when only an ARG's value changed, and would keep another commit's revision.
LABEL org.opencontainers.image.title="inference-operator" \
      org.opencontainers.image.description="The inference operator, its gateway, batch runner and cloud API server" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/inference-operator /opt/inference-operator
# HOME is the chart's writable /tmp (an emptyDir): nothing looks for /.kube or writes under /.
ENV PATH=/opt/inference-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
# kopf's health endpoint (/healthz) and the Prometheus /metrics endpoint.
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "inference_operator"]
