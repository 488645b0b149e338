#!/bin/bash
# Run D, device call 2 (H100): compiled configurations not measured in call 1
# (MobileMamba-S6/B1/B2/B4, TinyViM-B AMP, TinyViM fp32), MobileMamba-B1/B2/B4
# inference, MobileMamba training (eager, cl+graph), kernel profile.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
date -u
warm() {  # compile one configuration in the background (timing discarded)
  TORCHINDUCTOR_COMPILE_THREADS=2 timeout 150 python3 $B $1 --peers --modes $2 \
    --configs deploy+cl+compile+graph --warmup 1 --min-time 0.01 > $OUT/warm_$1_$2.log 2>&1 &
}
for v in s6 b1 b2 b4; do warm mobilemamba-$v amp; warm mobilemamba-$v fp32; done
warm tinyvim-b amp; for v in s b l; do warm tinyvim-$v fp32; done
timeout 100 python3 -m pytest tests/test_wavelet.py -q -s -p no:cacheprovider > $OUT/test_gpu.log 2>&1
grep -E "passed|failed" $OUT/test_gpu.log
wait; date -u
grep -L '"img_s"' $OUT/warm_*.log
timeout 40 python3 docs/benchmark_runs/profile_kernels.py mobilemamba-s6 mobilemamba-b4 > $OUT/profile.txt 2>&1; grep -E '^==|^  ' $OUT/profile.txt
S="grep -E ^\|"
timeout 160 python3 $B mobilemamba-b1 mobilemamba-b2 mobilemamba-b4 --peers resnet18 --modes amp fp32 \
  --configs eager haar=conv deploy+cl+graph deploy+cl+compile+graph --min-time 1 --out $OUT/run_d2_infer.json > $OUT/infer.log 2>&1; $S $OUT/infer.log
timeout 70 python3 $B mobilemamba-s6 tinyvim-b --peers --modes amp fp32 --configs deploy+cl+compile+graph \
  --min-time 1 --out $OUT/run_d2_compile.json > $OUT/compile.log 2>&1; $S $OUT/compile.log
timeout 50 python3 $B tinyvim-s tinyvim-l --peers --modes fp32 --configs deploy+cl+compile+graph \
  --min-time 1 --out $OUT/run_d2_compile_tv.json > $OUT/compile_tv.log 2>&1; $S $OUT/compile_tv.log
timeout 110 python3 $B mobilemamba-t2 mobilemamba-t4 mobilemamba-s6 mobilemamba-b1 mobilemamba-b2 mobilemamba-b4 \
  --peers resnet18 --modes train --configs eager cl+graph --min-time 1 --out $OUT/run_d2_train.json > $OUT/train.log 2>&1; $S $OUT/train.log
date -u
