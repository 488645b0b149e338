#!/bin/bash
# Run J, device call 1 (nvidia-h200): what is left of the detector
# backbone's training time against R50, and where TinyViM's default
# inference spends its GPU time.
# 1. Mask R-CNN backbone+neck training at 2x800x1344 (AMP): R50
#    channels-last; TinyViM-S per-shape CUDA graph, with and without
#    torch.compile inside the graph; kernel categories of each step;
# 2. TinyViM-S classifier inference as the default path runs it
#    (folded, channels-last), fp32 and AMP, batch 256: kernel categories.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
P=docs/benchmark_runs/probe_i1.py
R50DET=/tmp/site/mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
timeout 60 python3 $P parts $R50DET --batch 2 --variants cl --top 10 > $OUT/j1_r50.log 2>&1; echo "r50 rc=$?"
timeout 330 python3 $P parts configs/maskrcnn_tinyvim_s_coco.py --batch 2 --variants cl+graph cl+compile+graph --top 10 > $OUT/j1_det.log 2>&1; echo "det rc=$?"
grep -h '^{"config' $OUT/j1_r50.log $OUT/j1_det.log | cut -c1-300
date -u
timeout 60 python3 docs/benchmark_runs/profile_kernels.py tinyvim-s --fp32 --deploy --cl --top 12 > $OUT/j1_prof_fp32.log 2>&1; echo "prof fp32 rc=$?"
timeout 60 python3 docs/benchmark_runs/profile_kernels.py tinyvim-s --deploy --cl --top 12 > $OUT/j1_prof_amp.log 2>&1; echo "prof amp rc=$?"
grep -h -A1 "^==" $OUT/j1_prof_fp32.log $OUT/j1_prof_amp.log | cut -c1-300
date -u
