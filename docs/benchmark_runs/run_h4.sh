#!/bin/bash
# Run H, device call 4 (nvidia-h200): which memory format the default
# inference path should use per family: the folded network replayed as a
# CUDA graph, contiguous (NCHW) or channels-last, with and without
# cudnn.benchmark, timm resnet18 in the same run.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
timeout 330 python3 tools/analysis_tools/benchmark.py tinyvim-s tinyvim-l mobilemamba-b1 mobilemamba-b4 --peers resnet18 --modes amp fp32 --configs deploy+graph deploy+cl+graph deploy+cudnn+graph deploy+cl+cudnn+graph --min-time 1 --out $OUT/h4_formats.json > $OUT/h4_formats.log 2>&1
echo "formats rc=$?"; sed -n '/^| model/,$p' $OUT/h4_formats.log; grep -E "error" $OUT/h4_formats.log | cut -c1-300 | head
