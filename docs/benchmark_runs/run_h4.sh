#!/bin/bash
# Run H, device call 4 (nvidia-h200): which memory format the default
# inference path should use per family: the folded network replayed as a
# CUDA graph, contiguous (NCHW) or channels-last, with and without
# cudnn.benchmark, timm resnet18 in the same run.
set -u
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
timeout 330 python3 tools/analysis_tools/benchmark.py tinyvim-s tinyvim-l mobilemamba-b1 mobilemamba-b4 --peers resnet18 --modes amp fp32 --configs deploy+graph deploy+cl+graph deploy+cudnn+graph deploy+cl+cudnn+graph --min-time 1 --out $OUT/h4_formats.json > $OUT/h4_formats.log 2>&1
echo "formats rc=$?"; sed -n '/^| model/,$p' $OUT/h4_formats.log; grep -E "error" $OUT/h4_formats.log | cut -c1-300 | head
