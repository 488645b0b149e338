#!/bin/bash
# Run F, device call 9 (H100): the benchmark's training step after it
# became one function for the manual (`eager`, `cl+graph`) and the
# accelerate (`api`) configurations.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 200 python3 tools/analysis_tools/benchmark.py mobilemamba-t2 --peers resnet18 --modes train --train-batch 128 --configs eager cl+graph api --min-time 1 --out $OUT/run_f9_train.json > $OUT/train.log 2>&1
grep -E "^\||Error" $OUT/train.log | cut -c1-200
date -u
