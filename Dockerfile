# syntax=docker/dockerfile:1
# One image for the six services and the console. `docker run IMAGE NAME` runs `python -m services NAME` (= `python -m services.NAME`)
# in the foreground; compose.yaml and deploy/ (Kubernetes) pass the service name as the command.
# The image holds the runtime only: the `mlops` library and the services. The tooling (tools/: command line, demo,
# local stack) is never copied in, and the build fails if it were installed anyway.
#
#   docker build -t mlops-platform:dev .
#   docker run --rm -e MLOPS_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 mlops-platform:dev inference
#
# The base is pinned by tag; pin it by digest too (python:3.11-slim-bookworm@sha256:...) where your registry
# policy asks for it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install the pinned dependencies and the project into a virtual environment ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# pip installs the project and its pinned dependencies from pyproject.toml (no extras: no tools, no tests)
COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY services/ services/
# (pip byte-compiles what it installs: the read-only runtime filesystem never needs to write .pyc files)
# Without tools/ in the build context, setuptools finds no mlops_tools package; the `mlops` console script it still
# writes would point at that missing package, so it goes too.
RUN pip install --upgrade pip \
 && pip install . \
 && rm -f /opt/venv/bin/mlops \
 && python -c "import importlib.util as u; assert u.find_spec('mlops_tools') is None, 'tooling in the image'"

# ---- runtime: the virtual environment, a health-check helper and an unprivileged user; no compilers, no pip cache
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mlops-platform" \
      org.opencontainers.image.description="Streaming MLOps platform: ingest, features, trainer, registry, inference, monitor"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLOPS_TELEMETRY_LOG_FORMAT=json
RUN groupadd --system --gid 10001 mlops \
 && useradd --system --uid 10001 --gid mlops --home-dir /app --shell /usr/sbin/nologin mlops \
 && mkdir -p /app/.run \
 && chown -R mlops:mlops /app
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/mlops-healthcheck
WORKDIR /app
USER 10001:10001
# ops HTTP (/metrics, /healthz, /readyz) of each service, and the two gRPC APIs
EXPOSE 9101 9102 9103 9104 9105 9106 8001 8002
# compose.yaml and the Kubernetes manifests define per-service checks; this default fits a service started
# with MLOPS_TELEMETRY_METRICS_PORT set (compose and deploy/ always set it)
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["mlops-healthcheck", "http-env"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "services"]
CMD ["inference"]
