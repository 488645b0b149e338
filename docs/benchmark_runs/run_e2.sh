#!/bin/bash
# Run E, device call 2 (H100): diagnose the wrong outputs of call 1.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=4
D=docs/benchmark_runs/diag_e2.py
for v in tinyvim-s mobilemamba-t2; do for s in triton torch; do
  timeout 170 python3 $D $v $s > $OUT/diag_${v}_${s}.log 2>&1 &
done; done
wait
cat $OUT/diag_*.log | grep -v Warn | grep -E "^(tinyvim|mobilemamba)|Error" | cut -c1-300
