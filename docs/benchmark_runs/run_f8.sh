#!/bin/bash
# Run F, device call 8 (H100): after moving the CUDA-graph capture into
# mmtinyvim.accelerate.capture_cuda_graph (used by for_inference and the
# benchmark): the graphed-inference CUDA tests and one graphed benchmark
# configuration per path that uses it.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=8
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 200 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py -k "graphed_inference" > $OUT/test_graphed_inference.log 2>&1
grep -E "max\|d\||passed|failed|^E " $OUT/test_graphed_inference.log | cut -c1-300
timeout 100 python3 $B mobilemamba-t2 --peers --modes amp --configs deploy+cl+graph --min-time 1 > $OUT/bench.log 2>&1
grep -E "^\||Error" $OUT/bench.log | cut -c1-200
timeout 120 python3 $B --det-only --det-config configs/maskrcnn_tinyvim_s_coco.py --det-configs deploy+graph --min-time 1 > $OUT/det.log 2>&1
grep -E "^\{|Error" $OUT/det.log | cut -c1-250
date -u
