#!/bin/bash
# Run D, device call 5 (H100): which operators launch cuDNN's layout
# transposes in MobileMamba-B4, and whether cudnn.benchmark avoids them.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
date -u
TORCHINDUCTOR_COMPILE_THREADS=8 timeout 150 python3 $B mobilemamba-b4 --peers --modes fp32 \
  --configs deploy+cl+cudnn+compile+graph --warmup 1 --min-time 0.01 > /tmp/warm.log 2>&1 &
timeout 100 python3 docs/benchmark_runs/find_transposes.py mobilemamba-b4 --fp32 > $OUT/transposes.txt 2>&1
timeout 60 python3 docs/benchmark_runs/find_transposes.py mobilemamba-b4 >> $OUT/transposes.txt 2>&1
grep -E '^==|^  ' $OUT/transposes.txt | cut -c1-260 | head -40
wait; date -u
show() { grep -h '"img_s"\|"error"' $1 | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r['model'], r['mode'], r['config'], r.get('img_s'), r.get('ratio'), r.get('peak_GiB'), r.get('setup_s'), r.get('error', '')[:150])"; }
timeout 100 python3 $B mobilemamba-b4 --peers resnet18 --modes fp32 amp --configs deploy+cl+cudnn+graph deploy+cl+cudnn+compile+graph --min-time 1 --out $OUT/run_d5_infer.json > /tmp/i.log 2>&1; show /tmp/i.log
timeout 70 python3 $B mobilemamba-b2 mobilemamba-b4 --peers --modes train --configs cl+cudnn+graph --min-time 1 --out $OUT/run_d5_train.json > /tmp/t.log 2>&1; show /tmp/t.log
date -u
