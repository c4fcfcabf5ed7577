#!/usr/bin/env bash
# The main job with no key: the exporter against the bundled OpenAI simulator, on :10077.
# Extra arguments go to `openai-key-exporter demo` (e.g. --web.listen-address 127.0.0.1:9999).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv
exec .venv/bin/openai-key-exporter demo "$@"
