#!/bin/bash
# Run D, device call 7 (H100): TinyViM-S fp32 with cudnn.benchmark, and
# MobileMamba-B4 compiled training with a CUDA graph.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
show() { grep -h '"img_s"\|"error"' $1 | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r['model'], r['mode'], r['config'], r.get('img_s'), r.get('ratio'), r.get('peak_GiB'), r.get('setup_s'), r.get('error', '')[:200])"; }
date -u
TORCHINDUCTOR_COMPILE_THREADS=8 timeout 200 python3 $B tinyvim-s --peers --modes fp32 --configs deploy+cl+cudnn+compile+graph \
  --warmup 1 --min-time 0.01 > /tmp/w1.log 2>&1 &
TORCHINDUCTOR_COMPILE_THREADS=8 timeout 200 python3 $B mobilemamba-b4 --peers --modes train --configs cl+compile+graph \
  --train-warmup 1 --min-time 0.01 > /tmp/w2.log 2>&1 &
wait; date -u; show /tmp/w2.log
timeout 100 python3 $B tinyvim-s --peers resnet18 --modes fp32 --configs deploy+cl+cudnn+graph deploy+cl+cudnn+compile+graph --min-time 1.5 --out $OUT/run_d7_tinyvim.json > /tmp/a.log 2>&1; show /tmp/a.log
timeout 100 python3 $B mobilemamba-b4 --peers --modes train --configs cl+compile+graph --min-time 1.5 --out $OUT/run_d7_train_b4.json > /tmp/b.log 2>&1; show /tmp/b.log
grep -h -E "Error" /tmp/b.log /tmp/w2.log | sort | uniq -c | sort -rn | head -3 | cut -c1-300
date -u
