#!/usr/bin/env bash
# Every test, on a fresh Debian machine: installs what the tests need, then lint, types, tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k probes).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

debian=()
command -v promtool >/dev/null || debian+=(prometheus)
command -v amtool >/dev/null || debian+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null || debian+=(prometheus-blackbox-exporter)
command -v curl >/dev/null || debian+=(curl)  # tests read gzipped /metrics as curl does
command -v chromium >/dev/null || debian+=(chromium)  # reads the status page as a browser does
# tests/container_test.py builds and runs the Dockerfile: podman with the runc runtime, on a
# Debian base that debootstrap makes (cached under /var/cache/openai-key-exporter-tests).
command -v podman >/dev/null || debian+=(podman)
command -v runc >/dev/null || debian+=(runc)
command -v debootstrap >/dev/null || debian+=(debootstrap)
apt_install "${debian[@]}"
# kubectl (for `kubectl kustomize` of deploy/kubernetes) is not in Debian's own archive: install it
# when an apt source has it; otherwise that test skips outside CI and fails in CI.
if ! command -v kubectl >/dev/null && apt-cache show kubectl >/dev/null 2>&1; then
  apt_install kubectl || echo "kubectl could not be installed; the kustomize test needs it" >&2
fi
ensure_venv

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy --strict exporter bench
echo "== pytest" >&2
exec .venv/bin/pytest -p no:cacheprovider "$@"
