#!/bin/bash
# Run G, device call 3 (nvidia-h200-x2): the graphed-vs-eager DDP check on
# two GPUs after the fix found from run G2 (the model is converted to
# channels-last before DDP wraps it, in GraphSafeDistributedDataParallel).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
C=docs/benchmark_runs/ddp_check.py
timeout 110 torchrun --nproc_per_node=2 --master_port=29531 $C tinyvim-s mobilemamba-t2 --parts check --out $OUT/g3_world2.json > $OUT/g3_world2.log 2>&1
echo "world2 rc=$?"; grep -E "^\[world|Error" $OUT/g3_world2.log | cut -c1-700
