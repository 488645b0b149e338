#!/bin/bash
# Run D, device call 3 (H100): MobileMamba training (eager, cl+graph,
# cl+compile = mmengine's compile switch plus channels-last) and
# torch.compile(mode='reduce-overhead') inference.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark.py
MM="mobilemamba-t2 mobilemamba-t4 mobilemamba-s6 mobilemamba-b1 mobilemamba-b2 mobilemamba-b4"
RO=deploy+cl+compile+mode=reduce-overhead
date -u
warm() {  # compile one configuration in the background (timing discarded)
  TORCHINDUCTOR_COMPILE_THREADS=2 timeout 170 python3 $B $1 --peers --modes $2 \
    --configs $3 --warmup 1 --train-warmup 1 --min-time 0.01 > /tmp/warm_$1_$2_$3.log 2>&1 &
}
for v in $MM; do warm $v train cl+compile; done
for v in mobilemamba-t2 mobilemamba-s6 mobilemamba-b4 tinyvim-s; do warm $v amp $RO; done
wait; date -u
grep -L '"img_s"' /tmp/warm_*.log
show() { grep -h '"img_s"\|"error"' $1 | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r['model'], r['mode'], r['config'], r.get('img_s'), r.get('ratio'), r.get('peak_GiB'), r.get('setup_s'), r.get('error', '')[:150])"; }
timeout 150 python3 $B $MM --peers resnet18 --modes train --configs eager cl+graph --min-time 1 --out $OUT/run_d3_train.json > /tmp/train.log 2>&1; show /tmp/train.log
timeout 110 python3 $B $MM --peers --modes train --configs cl+compile --min-time 1 --out $OUT/run_d3_train_compile.json > /tmp/trainc.log 2>&1; show /tmp/trainc.log
timeout 60 python3 $B mobilemamba-t2 mobilemamba-s6 mobilemamba-b4 tinyvim-s --peers --modes amp --configs $RO --min-time 1 --out $OUT/run_d3_ro.json > /tmp/ro.log 2>&1; show /tmp/ro.log
grep -h -E "Error" /tmp/*.log | sort | uniq -c | sort -rn | head -5 | cut -c1-300
date -u
