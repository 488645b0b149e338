#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
py="${MMTINYVIM_VENV:-$root/.venv}/bin/python"
# the Triton kernels run on CPU under TRITON_INTERPRET=1, which triton reads
# when a kernel module is first imported: those tests get their own process
"$py" -m pytest tests -q -s --durations=20 \
    --ignore=tests/test_scan_triton.py "$@"
"$py" -m pytest tests/test_scan_triton.py -q -s "$@"
