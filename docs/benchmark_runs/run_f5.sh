#!/bin/bash
# Run F, device call 5 (H100): CUDAGraphTrainingHook(compile=True) checked
# against eager training, and timed through mmengine's train_step for the
# variants with thin training margins (MobileMamba-B4/B2, TinyViM-L), with
# and without cudnn.benchmark.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=8
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 240 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py -k "hook_trains" > $OUT/test_hook.log 2>&1 &
# warm the inductor cache (untimed, in parallel with the test)
timeout 240 python3 $B mobilemamba-b4 mobilemamba-b2 tinyvim-l --peers --modes train --configs engine+hook+compile --train-warmup 1 --min-time 0.01 > $OUT/warm.log 2>&1
wait; date -u
grep -E "losses|passed|failed|^E " $OUT/test_hook.log | cut -c1-600
timeout 250 python3 $B mobilemamba-b4 mobilemamba-b2 tinyvim-l --peers resnet18 --modes train --configs engine+hook engine+hook+compile engine+hook+compile+cudnn --min-time 2 --train-warmup 3 --out $OUT/run_f5_engine.json > $OUT/engine.log 2>&1
grep -E "^\||Error" $OUT/engine.log | cut -c1-200
date -u
