#!/usr/bin/env bash
# Sets up .venv if needed, then runs the whole test suite (CPU only, no model download).
# Extra arguments go to pytest, e.g. scripts/test.sh test/core -k adapter
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
