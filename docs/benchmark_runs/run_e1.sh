#!/bin/bash
# Run E, device call 1 (H100): mmtinyvim.accelerate (the one-call fast
# paths) checked against the network on CUDA, and timed through the
# benchmark's `api` configuration.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=6
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader
date -u
# warm the inductor cache in parallel with the tests (not timed)
timeout 150 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py > $OUT/test_accelerate.log 2>&1 &
timeout 150 python3 $B tinyvim-s --peers --modes amp train --configs api --warmup 1 --train-warmup 1 --min-time 0.01 > /tmp/w1.log 2>&1 &
timeout 150 python3 $B mobilemamba-b4 --peers --modes amp --configs api --warmup 1 --min-time 0.01 > /tmp/w2.log 2>&1 &
wait; date -u
tail -12 $OUT/test_accelerate.log
timeout 80 python3 $B tinyvim-s --peers resnet18 --modes amp train --configs api --min-time 1.5 --out $OUT/run_e1_tinyvim_s.json > $OUT/e1_a.log 2>&1
timeout 60 python3 $B mobilemamba-b4 --peers --modes amp --configs api --min-time 1.5 --out $OUT/run_e1_b4.json > $OUT/e1_b.log 2>&1
tail -8 $OUT/e1_a.log $OUT/e1_b.log
grep -h Error /tmp/w1.log /tmp/w2.log | sort | uniq -c | head -5 | cut -c1-300
date -u
