#!/bin/bash
# Run H, device call 2 (nvidia-h200-x2): run G re-timed on the fixed tree,
# MobileMamba-T2's gradient gap located, and the NCCL teardown test.
# 1. ddp_check.py `check` (graphed vs eager DDP) and `check-repeat` (eager
#    vs eager: the floor of non-deterministic kernels), with the parameters
#    where the difference is, for TinyViM-S, MobileMamba-T2 and -B1;
# 2. per-GPU AMP training throughput on one and on two GPUs, eager and
#    graphed (same three variants);
# 3. tests/test_teardown.py (the two-process NCCL run ends cleanly).
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
V="tinyvim-s mobilemamba-t2 mobilemamba-b1"
C=docs/benchmark_runs/ddp_check.py
timeout 170 torchrun --nproc_per_node=2 --master_port=29541 $C $V --parts check check-repeat --out $OUT/h2_check_world2.json > $OUT/h2_check_world2.log 2>&1
echo "check rc=$?"; grep -E "^\[world|Error" $OUT/h2_check_world2.log | cut -c1-1500
date -u
timeout 120 torchrun --nproc_per_node=1 --master_port=29542 $C $V --parts speed --out $OUT/h2_speed_world1.json > $OUT/h2_speed_world1.log 2>&1
echo "world1 rc=$?"; grep -E "^\[world|Error" $OUT/h2_speed_world1.log | cut -c1-400
timeout 140 torchrun --nproc_per_node=2 --master_port=29543 $C $V --parts speed --out $OUT/h2_speed_world2.json > $OUT/h2_speed_world2.log 2>&1
echo "world2 rc=$?"; grep -E "^\[world|Error" $OUT/h2_speed_world2.log | cut -c1-400
date -u
timeout 120 python3 -m pytest -q -s -p no:cacheprovider tests/test_teardown.py -rs > $OUT/h2_teardown.log 2>&1
echo "teardown rc=$?"; tail -5 $OUT/h2_teardown.log
date -u
