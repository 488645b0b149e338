#!/bin/bash
# Run D, device call 1 (H100): GPU tests of the Triton scan and the Haar
# transforms, kernel profile, and MobileMamba inference (all six variants,
# AMP and fp32, eager / haar=conv / deploy+cl+graph / deploy+cl+compile+graph).
# The compiled configurations are compiled first in parallel processes (their
# timings discarded) so that the timed sequential run reuses inductor's caches.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
for v in t2 t4 s6 b1 b2 b4; do for m in amp fp32; do
  TORCHINDUCTOR_COMPILE_THREADS=2 timeout 250 python3 $B mobilemamba-$v --peers --modes $m \
    --configs deploy+cl+compile+graph --warmup 1 --min-time 0.01 > $OUT/warm_${v}_$m.log 2>&1 &
done; done
timeout 150 python3 -m pytest tests/test_wavelet.py tests/test_scan_triton.py -q -s -p no:cacheprovider > $OUT/test_gpu.log 2>&1
grep -E "Haar|WTEMamba|passed|failed|Error" $OUT/test_gpu.log | cut -c1-300
wait; date -u
grep -h '"img_s"' $OUT/warm_*.log | cut -c1-200
grep -h -E "Error|error" $OUT/warm_*.log | sort | uniq -c | head -5
timeout 40 python3 .carry/profile.py mobilemamba-s6 mobilemamba-b4 2>&1 | grep -E '^==|^  ' > $OUT/profile.txt; cat $OUT/profile.txt
timeout 330 python3 $B mobilemamba-t2 mobilemamba-t4 mobilemamba-s6 mobilemamba-b1 mobilemamba-b2 mobilemamba-b4 \
  --peers resnet18 --modes amp fp32 --configs eager haar=conv deploy+cl+graph deploy+cl+compile+graph \
  --min-time 1 --out $OUT/run_d1.json > $OUT/bench.log 2>&1
grep -E '^\|' $OUT/bench.log; grep -c '"error"' $OUT/bench.log; date -u
