#!/bin/bash
# Run D, device call 6 (H100): training runs cut short in calls 4 and 5
# (MobileMamba-B4 cl+cudnn+graph, TinyViM-B/L cl+graph) with a same-run peer.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
show() { grep -h '"img_s"\|"error"' $1 | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r['model'], r['mode'], r['config'], r.get('img_s'), r.get('ratio'), r.get('peak_GiB'), r.get('setup_s'), r.get('error', '')[:150])"; }
date -u
timeout 100 python3 $B mobilemamba-b4 --peers resnet18 --modes train --configs cl+graph cl+cudnn+graph --min-time 1.5 --out $OUT/run_d6_train_b4.json > /tmp/a.log 2>&1; show /tmp/a.log
timeout 80 python3 $B tinyvim-b tinyvim-l --peers --modes train --configs cl+graph --min-time 1.5 --out $OUT/run_d6_train_tinyvim.json > /tmp/b.log 2>&1; show /tmp/b.log
date -u
