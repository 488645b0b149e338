#!/bin/bash
# Run H, device call 6 (nvidia-h200): see run_h6.py.
set -u
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
timeout 90 python3 docs/benchmark_runs/run_h6.py 2>&1 | grep -v "^ " | tail -8 | tee $OUT/h6.log
