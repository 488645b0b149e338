#!/bin/bash
# Run F, device call 6 (H100): tests/test_accelerate.py, all CUDA tests,
# after F5 (the hook test compares two steps, see its docstring).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=8
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 420 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py > $OUT/test_accelerate.log 2>&1
grep -E "max\|d\||passed|failed|^E " $OUT/test_accelerate.log | cut -c1-600
date -u
