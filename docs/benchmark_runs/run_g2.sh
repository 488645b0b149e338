#!/bin/bash
# Run G, device call 2 (nvidia-h200-x2): where the graphed-vs-eager DDP
# difference of run G1 comes from: the same check on ONE process (DDP
# without a second rank), and eager DDP built on a side stream against
# mmengine's wrapper (is the side stream alone the cause?).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
C=docs/benchmark_runs/ddp_check.py
timeout 100 torchrun --nproc_per_node=1 --master_port=29521 $C tinyvim-s mobilemamba-t2 --parts check check-side --out $OUT/g2_world1.json > $OUT/g2_world1.log 2>&1
echo "world1 rc=$?"; grep -E "^\[world|Error" $OUT/g2_world1.log | cut -c1-700
