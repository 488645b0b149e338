#!/bin/bash
# Run F, device call 1 (H100): the CUDA tests of tests/test_accelerate.py
# (for_inference after the keep-alive fix, for_training's gradients), the
# gradient diagnosis diag_f1.py, and the detector-level benchmark of
# Mask R-CNN TinyViM-S and MobileMamba-B1 at 800x1333 with and without the
# fast paths.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=4
B=tools/analysis_tools/benchmark.py
DET="configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_mobilemamba_b1_coco.py"
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
# correctness first, in parallel with warming the inductor cache (untimed)
timeout 240 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py > $OUT/test_accelerate.log 2>&1 &
timeout 240 python3 docs/benchmark_runs/diag_f1.py mobilemamba-t2 triton torch > $OUT/diag_f1_t2.log 2>&1 &
timeout 240 python3 docs/benchmark_runs/diag_f1.py tinyvim-s triton torch > $OUT/diag_f1_tinyvim_s.log 2>&1 &
timeout 300 python3 $B --det-only --det-config $DET --det-configs api --warmup 1 --min-time 0.01 > $OUT/det_warm.log 2>&1 &
wait; date -u
tail -15 $OUT/test_accelerate.log
grep -v Warn $OUT/diag_f1_*.log | cut -c1-250
grep -E "Error|error" $OUT/det_warm.log | sort | uniq -c | head -5 | cut -c1-300
timeout 250 python3 $B --det-only --det-config $DET --det-configs eager deploy+graph api --out $OUT/run_f1_det.json > $OUT/det.log 2>&1
grep -E "^\{|Error" $OUT/det.log | cut -c1-300
date -u
