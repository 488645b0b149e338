#!/bin/bash
# Run H, device call 5 (nvidia-h200): training fast by default. The ImageNet
# configs now carry CUDAGraphTrainingHook(required=False) and the graph-safe
# DDP wrapper.
# 1. a full mmengine AMP training step of every variant (benchmark `engine`
#    = the network as built, the old default; `engine+hook` = what the
#    configs now do), batch 128, timm resnet18 in the same run;
# 2. tools/train.py on a shipped config with no flag, and with
#    --no-cuda-graph, on demo ImageNet data (the log says what ran).
set -u
source docs/benchmark_runs/device_env.sh  # wheels, stub, NCCL settings
date -u
timeout 300 python3 tools/analysis_tools/benchmark.py --modes train --train-batch 128 --peers resnet18 --peer-configs eager --configs engine engine+hook --min-time 1.5 --out $OUT/h5_train.json > $OUT/h5_train.log 2>&1
echo "train rc=$?"; sed -n '/^| model/,$p' $OUT/h5_train.log; grep -E "error" $OUT/h5_train.log | cut -c1-300 | head
date -u
python3 -m mmtinyvim.datasets.make_demo_data --task imagenet --out-root /tmp/dd --num-train 1536 --num-val 128 > /dev/null 2>&1
D=/tmp/dd/imagenet
OPTS="train_dataloader.dataset.data_root=$D val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D train_cfg.max_epochs=1 train_dataloader.num_workers=12 val_dataloader.num_workers=4 default_hooks.logger.interval=4 randomness.seed=0"
for flag in "" "--no-cuda-graph"; do
  name=t2${flag:+_no_cuda_graph}
  timeout 100 python3 tools/train.py configs/mobilemamba_t2_in1k.py --amp $flag --work-dir /tmp/$name --cfg-options $OPTS > $OUT/h5_$name.log 2>&1
  echo "$name rc=$?"; grep -E "CUDAGraph|Epoch\(train\).*\[12/|Epoch\(val\)|Error|rror:" $OUT/h5_$name.log | cut -c1-260 | tail -5
done
date -u
