#!/bin/bash
# Run I, device call 3 (nvidia-h200):
# 1. the default inference path's parts after the cheap weight check;
# 2. inference as a config builds it (`default`) for the variants that were
#    below 1.3x the best official, timm resnet18 in the same run;
# 3. whole train/test steps with the merged optimizer groups (MobileMamba's
#    paramwise configs), next to R50 and TinyViM-S;
# 4. tools/train.py with a shipped Mask R-CNN config on demo COCO images at
#    the pipeline's 1333x800: no flag (CUDA-graph hook) and --no-cuda-graph.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
B=tools/analysis_tools/benchmark.py
timeout 60 python3 docs/benchmark_runs/probe_i1.py gap --min-time 1 > $OUT/i3_gap.log 2>&1; echo "gap rc=$?"; grep '^{"model' $OUT/i3_gap.log
timeout 130 python3 $B tinyvim-s tinyvim-b tinyvim-l mobilemamba-b2 mobilemamba-b4 --peers resnet18 --modes amp fp32 --configs default --min-time 1 --out $OUT/i3_classifiers.json > $OUT/i3_classifiers.log 2>&1
echo "classifiers rc=$?"; sed -n '/^| model/,$p' $OUT/i3_classifiers.log
date -u
R50DET=/tmp/site/mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
R50SEG=/tmp/site/mmseg/.mim/configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py
timeout 110 python3 $B --steps-only --steps-batch 2 --min-time 1 --warmup 3 --step-config $R50DET configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_mobilemamba_b1_coco.py --out $OUT/i3_steps_det.json > $OUT/i3_steps_det.log 2>&1; echo "steps det rc=$?"
timeout 60 python3 $B --steps-only --steps-batch 4 --min-time 1 --warmup 3 --step-config $R50SEG configs/fpn_mobilemamba_b1_ade20k.py --out $OUT/i3_steps_seg.json > $OUT/i3_steps_seg.log 2>&1; echo "steps seg rc=$?"
grep -h '^{"config_file' $OUT/i3_steps_det.log $OUT/i3_steps_seg.log | grep train-step | sed 's/"config_file": "[^"]*\/\([^"/]*\)"/\1/' | cut -c1-230
date -u
python3 -m mmtinyvim.datasets.make_demo_data --task coco --out-root /tmp/dd --num-train 96 --num-val 16 > /dev/null 2>&1
D=/tmp/dd/coco/
OPTS="train_dataloader.dataset.data_root=$D val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D val_evaluator.ann_file=${D}annotations/instances_val2017.json test_evaluator.ann_file=${D}annotations/instances_val2017.json model.backbone.init_cfg=None train_cfg.max_epochs=1 train_dataloader.num_workers=8 default_hooks.logger.interval=8 randomness.seed=0"
for flag in "" "--no-cuda-graph"; do
  name=maskrcnn${flag:+_no_cuda_graph}
  timeout 85 python3 tools/train.py configs/maskrcnn_tinyvim_s_coco.py --amp $flag --work-dir /tmp/$name --cfg-options $OPTS > $OUT/i3_$name.log 2>&1
  echo "$name rc=$?"; grep -E "CUDAGraph|AccumulateGrad|runs eagerly|Epoch\(train\).*\[(40|48)/|bbox_mAP:|Error|rror:" $OUT/i3_$name.log | cut -c1-260 | tail -5
done
date -u
