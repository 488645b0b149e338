#!/bin/bash
# Run I, device call 1 (nvidia-h200): a probe before changing anything.
# 1. the CUDA tests of the default inference path (its capture was
#    refactored after run H) and of the one-call fast paths;
# 2. the default inference path split into its parts (probe_i1.py gap);
# 3. detector/segmentor backbone+neck training at the configs' shapes:
#    eager, channels-last, channels-last + CUDA graphs (+ compile), with
#    the GPU's own kernel time, next to mmdet's/mmseg's R50;
# 4. tools/train.py on demo ImageNet data: does torch's AccumulateGrad
#    stream warning still reach the log after the filter?
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
P=docs/benchmark_runs/probe_i1.py
timeout 150 python3 -m pytest -q -s -p no:cacheprovider tests/test_inference_path.py tests/test_accelerate.py -k "cuda" > $OUT/i1_tests.log 2>&1
echo "tests rc=$?"; grep -E "passed|failed|Error" $OUT/i1_tests.log | cut -c1-250 | tail -8
timeout 90 python3 $P gap --min-time 1 > $OUT/i1_gap.log 2>&1; echo "gap rc=$?"; grep '^{"model' $OUT/i1_gap.log; tail -3 $OUT/i1_gap.log | grep -i error
date -u
R50DET=/tmp/site/mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
R50SEG=/tmp/site/mmseg/.mim/configs/sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py
timeout 60 python3 $P parts $R50DET $R50SEG --variants eager cl > $OUT/i1_r50.log 2>&1; echo "r50 rc=$?"
timeout 150 python3 $P parts configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_tinyvim_b_coco.py configs/maskrcnn_mobilemamba_b1_coco.py --batch 2 --variants eager cl cl+graph > $OUT/i1_det.log 2>&1; echo "det rc=$?"
timeout 120 python3 $P parts configs/fpn_tinyvim_s_ade20k.py configs/fpn_mobilemamba_b1_ade20k.py --batch 4 --variants eager cl cl+graph > $OUT/i1_seg.log 2>&1; echo "seg rc=$?"
grep -h '^{"config' $OUT/i1_r50.log $OUT/i1_det.log $OUT/i1_seg.log | cut -c1-300
date -u
timeout 150 python3 $P parts configs/maskrcnn_tinyvim_s_coco.py configs/maskrcnn_mobilemamba_b1_coco.py --batch 2 --variants cl+compile+graph > $OUT/i1_compile.log 2>&1; echo "compile rc=$?"
grep -h '^{"config' $OUT/i1_compile.log | cut -c1-300
date -u
python3 -m mmtinyvim.datasets.make_demo_data --task imagenet --out-root /tmp/dd --num-train 512 --num-val 128 > /dev/null 2>&1
D=/tmp/dd/imagenet
OPTS="train_dataloader.dataset.data_root=$D val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D train_cfg.max_epochs=1 train_dataloader.num_workers=8 val_dataloader.num_workers=4 default_hooks.logger.interval=2 randomness.seed=0"
timeout 100 python3 tools/train.py configs/mobilemamba_t2_in1k.py --amp --work-dir /tmp/t2 --cfg-options $OPTS > $OUT/i1_t2.log 2>&1
echo "t2 rc=$?"; grep -E "CUDAGraph|AccumulateGrad|Epoch\(train\).*\[4/|Epoch\(val\)|Error|rror:" $OUT/i1_t2.log | cut -c1-260 | tail -6
date -u
