#!/bin/bash
# Run H, device call 3 (nvidia-h200-x2): the DDP check again without
# stochastic depth (run H2's B1 check compared two different random
# drop-path draws), eager-vs-graphed and eager-vs-eager, B1 and T2.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
C=docs/benchmark_runs/ddp_check.py
timeout 150 torchrun --nproc_per_node=2 --master_port=29551 $C mobilemamba-b1 mobilemamba-t2 --parts check check-repeat --out $OUT/h3_check_world2.json > $OUT/h3_check_world2.log 2>&1
echo "check rc=$?"; grep -E "^\[world|Error" $OUT/h3_check_world2.log | cut -c1-900
