# syntax=docker/dockerfile:1
# openai-key-exporter: build the wheel in one stage, run it from a slim, non-root, read-only image.
# Build: docker build -t openai-key-exporter:0.1.0 .
# Run:   docker run --read-only -p 10077:10077 -e OPENAI_API_KEY openai-key-exporter:0.1.0

FROM python:3.12.11-slim-bookworm@sha256:519591d6871b7bc437060736b9f7456b8731f1499a57e22e6c285135ae657bf7 AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter

# The wheel, then a virtualenv holding it and its dependencies (binary wheels only, so no
# compiler is needed here either). pip and setuptools leave the venv: the runtime needs neither.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/openai-key-exporter \
    && /opt/openai-key-exporter/bin/pip install --only-binary=:all: /wheels/*.whl \
    && /opt/openai-key-exporter/bin/pip uninstall --yes pip setuptools \
    && /opt/openai-key-exporter/bin/openai-key-exporter --version \
    && /opt/openai-key-exporter/bin/python -c \
       "from exporter.runbook_pages import load_runbook_pages; load_runbook_pages()"


FROM python:3.12.11-slim-bookworm@sha256:519591d6871b7bc437060736b9f7456b8731f1499a57e22e6c285135ae657bf7

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="openai-key-exporter" \
      org.opencontainers.image.description="Prometheus exporter that tells you an OpenAI API key stopped working, before your users do" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.11-slim-bookworm"

# Nothing is written at run time but the optional --storage.path state file, in a volume
# mounted at /var/lib/openai-key-exporter, so the root filesystem can be mounted read-only:
# no .pyc files, no pip, no home directory to fill.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/openai-key-exporter/bin:${PATH}" \
    HEALTHCHECK_URL="http://127.0.0.1:10077/-/healthy"

# pip leaves the final image too; the exporter runs from its own virtualenv.
RUN python -m pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 65532 exporter \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin exporter \
    && install -d -o 65532 -g 65532 -m 0700 /var/lib/openai-key-exporter

COPY --from=build /opt/openai-key-exporter /opt/openai-key-exporter

# Keys: OPENAI_API_KEY in the environment, or a secret mounted under /run/secrets and named by
# `api_key_file` in a config mounted at /etc/openai-key-exporter/config.yml.
USER 65532:65532
WORKDIR /
EXPOSE 10077

# slim has no curl; Python's urllib is enough. Set HEALTHCHECK_URL if the listen address moves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["openai-key-exporter"]
