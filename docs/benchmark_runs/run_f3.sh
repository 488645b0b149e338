#!/bin/bash
# Run F, device call 3 (H100): CUDAGraphTrainingHook's CUDA test against
# the eager channels-last network (the F2 version compared with the
# contiguous one and divided by each tensor's std), and the training
# benchmark through mmengine's train_step for all nine variants (F2's
# attempt left the data preprocessor on the CPU).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 200 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py -k "hook or graphed_training" > $OUT/test_hook.log 2>&1
grep -E "losses|for_training vs|passed|failed|Error" $OUT/test_hook.log | cut -c1-600
timeout 330 python3 $B --peers resnet18 --modes train --configs engine engine+hook --min-time 2 --train-warmup 3 --out $OUT/run_f3_engine.json > $OUT/engine.log 2>&1
grep -E "^\||Error" $OUT/engine.log | cut -c1-200
date -u
