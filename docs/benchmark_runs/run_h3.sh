#!/bin/bash
# Run H, device call 3 (nvidia-h200-x2): the DDP check again without
# stochastic depth (run H2's B1 check compared two different random
# drop-path draws), eager-vs-graphed and eager-vs-eager, B1 and T2.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
C=docs/benchmark_runs/ddp_check.py
timeout 150 torchrun --nproc_per_node=2 --master_port=29551 $C mobilemamba-b1 mobilemamba-t2 --parts check check-repeat --out $OUT/h3_check_world2.json > $OUT/h3_check_world2.log 2>&1
echo "check rc=$?"; grep -E "^\[world|Error" $OUT/h3_check_world2.log | cut -c1-900
