#!/bin/bash
# Run F, device call 2 (H100): CUDAGraphTrainingHook (tools/train.py
# --cuda-graph). Its CUDA tests (3 mmengine train steps with and without
# the hook), a real tools/train.py run on demo ImageNet data with and
# without --cuda-graph, and the training benchmark through mmengine's
# train_step (`engine`, `engine+hook`) for all nine variants.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=4
B=tools/analysis_tools/benchmark.py
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
timeout 300 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py > $OUT/test_accelerate.log 2>&1 &
python3 -m mmtinyvim.datasets.make_demo_data --task imagenet --out-root /tmp/dd --num-train 2048 --num-val 250 > /dev/null
D=/tmp/dd/imagenet
OPTS="train_dataloader.dataset.data_root=$D val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D train_cfg.max_epochs=2 train_dataloader.num_workers=12 val_dataloader.num_workers=4 default_hooks.logger.interval=4"
for flag in "" "--cuda-graph"; do
  name=train_t2${flag:+_cuda_graph}
  timeout 200 python3 tools/train.py configs/mobilemamba_t2_in1k.py $flag --work-dir /tmp/$name --cfg-options $OPTS > $OUT/$name.log 2>&1
  echo "$name rc=$?"; grep -E "Epoch\(|Error" $OUT/$name.log | cut -c1-230 | tail -12
  ls /tmp/$name | head -5
done
wait; date -u
grep -E "max\|d\||losses|passed|failed|Error" $OUT/test_accelerate.log | cut -c1-300
timeout 280 python3 $B --peers resnet18 --modes train --configs engine engine+hook --min-time 2 --train-warmup 3 --out $OUT/run_f2_engine.json > $OUT/engine.log 2>&1
grep -E "^\||Error" $OUT/engine.log | cut -c1-200
date -u
