#!/bin/bash
# Run F, device call 7 (H100): AMP training at batch 64 (the second
# training batch; the official anchors exist for 128 only) for all nine
# variants: eager, cl+graph and the mmengine step with --cuda-graph's hook.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 420 python3 $B --peers resnet18 --modes train --train-batch 64 --configs eager cl+graph engine+hook --min-time 1.5 --train-warmup 3 --out $OUT/run_f7_train64.json > $OUT/train64.log 2>&1
grep -E "^\||Error" $OUT/train64.log | cut -c1-200
date -u
