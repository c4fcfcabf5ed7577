# syntax=docker/dockerfile:1
# openai-key-exporter: build the wheel in one stage, run it from a slim, non-root, read-only image.
# Build: docker build -t openai-key-exporter:0.1.0 .
# Run:   docker run --read-only -p 10077:10077 -e OPENAI_API_KEY openai-key-exporter:0.1.0
#
# Both stages start from Debian bookworm and run Debian's own python3 (3.11, from the archive),
# not a Python built elsewhere: debootstrap reproduces this base from Debian's archive, so the
# tests build and run this very file on a stand-in (BASE_IMAGE, tests/container_test.py) with
# the same interpreter, paths and packages as production.
# The default is debian:bookworm-slim as published on 2026-08-03 (debuerreotype @1785715200).
ARG BASE_IMAGE=debian:bookworm-slim@sha256:abd67ffcfa541b485a3dff59865ab629aa048a6c613e639d36e7456b0b229241

FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Unpinned on purpose: each build takes bookworm's current security fixes; the base digest
# pins everything else.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter

# The wheel, then a virtualenv holding it and its dependencies (binary wheels only, so no
# compiler is needed here either). pip and setuptools leave the venv: the runtime needs neither.
# Behind a TLS-intercepting proxy, pass its CA bundle as the build secret `pip_cert`
# (`--secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt`): pip trusts it for this step
# only, and nothing of it stays in the image.
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && python3 -m venv /opt/openai-key-exporter \
    && /opt/openai-key-exporter/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/openai-key-exporter/bin/pip install --only-binary=:all: /wheels/*.whl \
    && /opt/openai-key-exporter/bin/pip uninstall --yes pip setuptools \
    && /opt/openai-key-exporter/bin/openai-key-exporter --version \
    && /opt/openai-key-exporter/bin/python -c \
       "from exporter.runbook_pages import load_runbook_pages; load_runbook_pages()"


FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="openai-key-exporter" \
      org.opencontainers.image.description="Prometheus exporter that tells you an OpenAI API key stopped working, before your users do" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# Nothing is written at run time but the optional --storage.path state file, in a volume
# mounted at /var/lib/openai-key-exporter, so the root filesystem can be mounted read-only:
# no .pyc files, no pip, no home directory to fill.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/openai-key-exporter/bin:${PATH}" \
    HEALTHCHECK_URL="http://127.0.0.1:10077/-/healthy"

# The interpreter the virtualenv was made with (its bin/python links to /usr/bin/python3), and
# the CA roots the probes verify api.openai.com with. No pip, no venv module, no compiler.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
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

# No curl in the image; Python's urllib is enough. Set HEALTHCHECK_URL if the listen address moves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["openai-key-exporter"]
