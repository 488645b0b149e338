#!/bin/bash
# Run I, device call 2 (nvidia-h200): detector/segmentor training through
# the configs' CUDAGraphTrainingHook (batch shapes padded to a few sizes,
# one graph each; backbone channels-last, NCHW outputs), and the default
# inference path after its per-call weight check was made cheap.
# 1. CUDA tests: the default inference path (outputs NCHW), the padded
#    training graphs against eager on the padded batch, the hook in an
#    mmengine train step;
# 2. the default inference path split into its parts again (probe_i1 gap);
# 3. backbone+neck at the configs' shapes: train (config default = hook)
#    and eval, next to mmdet's / mmseg's R50 configs;
# 4. whole train and test steps (benchmark --step-config), same configs.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
B=tools/analysis_tools/benchmark.py
timeout 170 python3 -m pytest -q -s -p no:cacheprovider tests/test_inference_path.py tests/test_accelerate.py -k "(cuda and test_graphed_default) or pad_and_crop or (hook_trains_like_eager and not True)" > $OUT/i2_tests.log 2>&1
echo "tests rc=$?"; grep -E "max\|d\||passed|failed|Error" $OUT/i2_tests.log | cut -c1-300 | tail -14
timeout 60 python3 docs/benchmark_runs/probe_i1.py gap --min-time 1 > $OUT/i2_gap.log 2>&1; echo "gap rc=$?"; grep '^{"model' $OUT/i2_gap.log
date -u
R50DET=/tmp/site/mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
R50SEG=/tmp/site/mmseg/.mim/configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py
DET="$R50DET configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_tinyvim_b_coco.py configs/maskrcnn_mobilemamba_b1_coco.py"
SEG="$R50SEG configs/fpn_tinyvim_s_ade20k.py configs/fpn_mobilemamba_b1_ade20k.py"
timeout 110 python3 $B --parts-only --parts-batch 2 --min-time 1 --parts-config $DET --out $OUT/i2_parts_det.json > $OUT/i2_parts_det.log 2>&1; echo "parts det rc=$?"
timeout 80 python3 $B --parts-only --parts-batch 4 --min-time 1 --parts-config $SEG --out $OUT/i2_parts_seg.json > $OUT/i2_parts_seg.log 2>&1; echo "parts seg rc=$?"
grep -h '^{"config_file' $OUT/i2_parts_det.log $OUT/i2_parts_seg.log | sed 's/"config_file": "[^"]*\/\([^"/]*\)"/\1/' | cut -c1-260
date -u
timeout 150 python3 $B --steps-only --steps-batch 2 --min-time 1 --warmup 3 --step-config $R50DET configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_mobilemamba_b1_coco.py --out $OUT/i2_steps_det.json > $OUT/i2_steps_det.log 2>&1; echo "steps det rc=$?"
timeout 80 python3 $B --steps-only --steps-batch 4 --min-time 1 --warmup 3 --step-config $R50SEG configs/fpn_tinyvim_s_ade20k.py configs/fpn_mobilemamba_b1_ade20k.py --out $OUT/i2_steps_seg.json > $OUT/i2_steps_seg.log 2>&1; echo "steps seg rc=$?"
grep -h '^{"config_file' $OUT/i2_steps_det.log $OUT/i2_steps_seg.log | sed 's/"config_file": "[^"]*\/\([^"/]*\)"/\1/' | cut -c1-260
grep -h "AccumulateGrad\|Error" $OUT/i2_*.log | sort | uniq -c | head -5
date -u
