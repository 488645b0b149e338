#!/bin/bash
# Run H, device call 1 (nvidia-h200): the backbones' default inference path
# (InferencePath: folded copy, channels-last, CUDA graphs for repeated
# shapes), which every config now gets without a switch.
# 1. the CUDA tests of the default path and of the one-call fast paths;
# 2. every variant's classifier, AMP and fp32, batch 256: `eager` (the
#    network as built, path off) and `default` (as a config builds it),
#    with timm resnet18 in the same run;
# 3. backbone+neck of Mask R-CNN and Semantic FPN (TinyViM-S, MobileMamba-B1)
#    next to mmdet's / mmseg's own R50 configs, same batch and size;
# 4. the Mask R-CNN predict step, default vs eager.
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
B=tools/analysis_tools/benchmark.py
timeout 120 python3 -m pytest -q -s -p no:cacheprovider tests/test_inference_path.py tests/test_accelerate.py -k "cuda" > $OUT/h1_tests.log 2>&1
grep -E "max\|d\||passed|failed|Error" $OUT/h1_tests.log | cut -c1-250 | tail -20
date -u
timeout 260 python3 $B --peers resnet18 --modes amp fp32 --configs eager default --min-time ${H1_MIN_TIME:-1} --out $OUT/h1_classifiers.json > $OUT/h1_classifiers.log 2>&1
echo "classifiers rc=$?"; sed -n '/^| model/,$p' $OUT/h1_classifiers.log; grep -E "error" $OUT/h1_classifiers.log | cut -c1-300 | head
date -u
R50DET=/tmp/site/mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
R50SEG=/tmp/site/mmseg/.mim/configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py
timeout 100 python3 $B --parts-only --parts-batch 2 --min-time 1 --parts-config $R50DET configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_mobilemamba_b1_coco.py --out $OUT/h1_parts_det.json > $OUT/h1_parts_det.log 2>&1
echo "parts det rc=$?"; grep -E "^\{\"config_file" $OUT/h1_parts_det.log | cut -c1-330
timeout 80 python3 $B --parts-only --parts-batch 4 --min-time 1 --parts-config $R50SEG configs/fpn_tinyvim_s_ade20k.py configs/fpn_mobilemamba_b1_ade20k.py --out $OUT/h1_parts_seg.json > $OUT/h1_parts_seg.log 2>&1
echo "parts seg rc=$?"; grep -E "^\{\"config_file" $OUT/h1_parts_seg.log | cut -c1-330
date -u
timeout 80 python3 $B --det-only --det-configs eager default --min-time 1 --det-config configs/maskrcnn_tinyvim_s_coco.py --out $OUT/h1_det.json > $OUT/h1_det.log 2>&1
echo "det rc=$?"; grep -E "^\{\"config_file" $OUT/h1_det.log | cut -c1-300
date -u
