#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${MMTINYVIM_VENV:-$root/.venv}/bin/python" -m pytest tests -q -s \
    --durations=20 "$@"
