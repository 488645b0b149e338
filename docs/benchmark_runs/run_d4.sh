#!/bin/bash
# Run D, device call 4 (H100): where MobileMamba-B4's fp32 inference and
# training time goes (kernel categories), and TinyViM in the current tree
# (fp32/AMP compile of S, training cl+graph of S/B/L) with a same-run peer.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
P=docs/benchmark_runs/profile_kernels.py
date -u
for m in amp fp32; do TORCHINDUCTOR_COMPILE_THREADS=4 timeout 150 python3 $B tinyvim-s --peers --modes $m \
  --configs deploy+cl+compile+graph --warmup 1 --min-time 0.01 > /tmp/warm_$m.log 2>&1 & done
TORCHINDUCTOR_COMPILE_THREADS=4 timeout 150 python3 $P mobilemamba-b4 --fp32 --deploy --cl --compile > $OUT/profile.txt 2>&1 &
wait; date -u
timeout 60 python3 $P mobilemamba-b4 --train --cl >> $OUT/profile.txt 2>&1
timeout 60 python3 $P mobilemamba-b4 mobilemamba-s6 --fp32 --deploy --cl >> $OUT/profile.txt 2>&1
grep -E '^==|^   |^  ' $OUT/profile.txt | cut -c1-300
show() { grep -h '"img_s"\|"error"' $1 | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r['model'], r['mode'], r['config'], r.get('img_s'), r.get('ratio'), r.get('peak_GiB'), r.get('setup_s'), r.get('error', '')[:150])"; }
timeout 80 python3 $B tinyvim-s --peers resnet18 --modes amp fp32 --configs deploy+cl+compile+graph --min-time 1.5 --out $OUT/run_d4_tinyvim.json > /tmp/tv.log 2>&1; show /tmp/tv.log
timeout 90 python3 $B tinyvim-s tinyvim-b tinyvim-l --peers --modes train --configs eager cl+graph --min-time 1 --out $OUT/run_d4_train.json > /tmp/tvt.log 2>&1; show /tmp/tvt.log
date -u
