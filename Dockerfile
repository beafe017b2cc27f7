# syntax=docker/dockerfile:1
#
# The canarywatch image: one image for every process the Helm chart and the operator
# run (`canarywatch operator`, the agents `canarywatch camera` / `canarywatch viewer`,
# the demo's `canarywatch relay` and `canarywatch pd-receiver`). The chart's default
# image, ghcr.io/canarywatch/canarywatch:<appVersion>, is this file built and pushed:
#
#   docker build -t ghcr.io/canarywatch/canarywatch:0.1.0 .
#   docker push ghcr.io/canarywatch/canarywatch:0.1.0
#   helm install canarywatch charts/canarywatch --set image.digest=sha256:<pushed digest>
#
# (The development environment of this repository has no container engine, so the
# image is not built by `make test`; the chart tier checks the chart against what this
# file promises: the entrypoint, the user and the writable paths.)
#
# Base image: pinned by tag in both stages, so the virtualenv built in the first runs on
# the very same Python. For reproducible builds pin the digest too; resolve it with
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# and build with
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
# (Renovate/Dependabot keep such a pin current.)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the package and its dependencies in a virtualenv ----------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/canarywatch
WORKDIR /src
# Only what the wheel is made of (see .dockerignore): pyproject.toml, README.md (the
# package's long description) and the package itself.
COPY pyproject.toml README.md ./
COPY operator ./operator
# Runtime dependencies only (no [dev] extra); wheels for every dependency exist for
# CPython 3.11 on manylinux, so no compiler is needed.
RUN /opt/canarywatch/bin/pip install --no-compile . \
 # Byte-compile once here: at run time the root filesystem is read-only.
 && /opt/canarywatch/bin/python -m compileall -q /opt/canarywatch \
 && /opt/canarywatch/bin/canarywatch --help >/dev/null

# ---- runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="canarywatch" \
      org.opencontainers.image.description="Continuous privacy-compliance monitor for multi-tenant camera integrations" \
      org.opencontainers.image.source="https://github.com/canarywatch/canarywatch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# iproute2: `ip` and `tc` for the viewers' netem init container (profiles with
# `shaper: tc`, which runs as root with NET_ADMIN only); nothing else is added.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin nonroot

COPY --from=builder /opt/canarywatch /opt/canarywatch

# Read-only root filesystem: nothing is written outside /tmp (an emptyDir in the pods):
# no .pyc files (compiled at build time), HOME in /tmp, unbuffered logs to stderr.
ENV PATH=/opt/canarywatch/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# 65532 ("nonroot"): the uid the chart's securityContext and the operator's agent pods
# run as (runAsNonRoot needs a numeric USER to verify).
USER 65532:65532
WORKDIR /tmp

# 9090 operator /metrics, 8080 operator /healthz, 9100 agents' /metrics and /healthz,
# 9000 relay, 8765 PagerDuty receiver (documentation only: the chart sets the ports).
EXPOSE 8080 9090 9100 9000 8765

ENTRYPOINT ["canarywatch"]
CMD ["--help"]
