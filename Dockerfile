# syntax=docker/dockerfile:1
# The agentprom image. Built in a slim Python image; run in a distroless Python 3.11 image (Debian 12):
# no shell, no package manager, a non-root user, and a root filesystem that can be mounted read-only.
#   docker build -t agentprom .                    # the sidecar (last stage)
#   docker build --target demo -t agentprom-demo . # `agentprom demo`, the demo agent of docker-compose.yml
# Both base images are arguments so that a release can pin them by digest.
ARG BUILD_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# gcc and the C library headers build the compiled parts (src/agentprom/receiver/_wire.pyx, the decoder;
# conventions/_classify.pyx, classification; context/_batch.pyx, the trace context; sessions/_spans.pyx, the
# session tracker's span loop) here,
# in the build stage only: the runtime image gets the built extensions, no compiler. Unpinned: the
# versions are the base image's Debian release's (the base image is the pin).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# A plain directory on PYTHONPATH rather than a virtualenv: the runtime image's interpreter lives at
# another path (/usr/bin/python3.11), and the cp311 wheels fit both. Byte code is compiled here because
# the runtime root filesystem is read-only; unchecked-hash .pyc files do not depend on file times.
RUN python -m pip install --no-compile --target /out/lib . \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /out/lib \
 && install -d -m 0750 -o 65532 -g 65532 /out/data

FROM ${BUILD_IMAGE} AS demo
# `agentprom demo` (the package built above) with the pinned OpenTelemetry SDK and exporters it sends with.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1 PYTHONPATH=/opt/agentprom/lib OTEL_EXPORTER_OTLP_ENDPOINT=http://sidecar:4317
COPY examples/requirements-demo.txt /tmp/requirements-demo.txt
RUN python -m pip install -r /tmp/requirements-demo.txt
COPY --from=build /out/lib /opt/agentprom/lib
USER 65532:65532
ENTRYPOINT ["python", "-m", "agentprom", "demo"]
CMD ["--sessions", "20"]

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="agentprom" \
      org.opencontainers.image.description="OpenTelemetry-to-Prometheus sidecar for AI agents" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/lib /opt/agentprom/lib
COPY config/agentprom.yaml /etc/agentprom/agentprom.yaml
# The only writable place: session JSONL output and other state. Mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/agentprom
ENV PYTHONPATH=/opt/agentprom/lib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AGENTPROM_HEALTHCHECK_URL=http://127.0.0.1:9464/-/healthy
USER 65532:65532
WORKDIR /var/lib/agentprom
VOLUME ["/var/lib/agentprom"]
EXPOSE 4317 4318 9464
# Exec form: there is no shell in this image. Set AGENTPROM_HEALTHCHECK_URL when the metrics port moves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/bin/python3", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(os.environ['AGENTPROM_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["/usr/bin/python3", "-m", "agentprom"]
CMD ["serve", "--config", "/etc/agentprom/agentprom.yaml"]
