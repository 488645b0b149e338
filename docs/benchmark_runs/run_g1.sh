#!/bin/bash
# Run G, device call 1 (nvidia-h200-x2): graphed training under DDP.
# 1. ddp_check.py on one and on two GPUs: gradients and losses of DDP with
#    CUDAGraphTrainingHook against eager DDP (fp32, TF32 off), and AMP
#    training img/s per GPU, eager and graphed;
# 2. tools/dist_train.sh CONFIG 2 with and without --cuda-graph on demo
#    ImageNet data (the launcher path users run);
# 3. the CUDA tests of tests/test_accelerate.py after the layout change.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
python3 -c "import importlib; print('missing:', [m for m in 'cv2 matplotlib scipy rich tqdm yaml PIL packaging numpy pandas'.split() if importlib.util.find_spec(m) is None])"
python3 -c "import mmtinyvim, mmdet.apis, mmseg.apis, mmpretrain.apis" > $OUT/import.log 2>&1 || { tail -3 $OUT/import.log; exit 1; }
V="tinyvim-s mobilemamba-t2 mobilemamba-b1"
C=docs/benchmark_runs/ddp_check.py
timeout 150 torchrun --nproc_per_node=1 --master_port=29511 $C $V --parts speed --out $OUT/g1_world1.json > $OUT/g1_world1.log 2>&1
echo "world1 rc=$?"; grep -E "^\[world|Error" $OUT/g1_world1.log | cut -c1-400
timeout 200 torchrun --nproc_per_node=2 --master_port=29512 $C $V --out $OUT/g1_world2.json > $OUT/g1_world2.log 2>&1
echo "world2 rc=$?"; grep -E "^\[world|Error" $OUT/g1_world2.log | cut -c1-600
date -u
python3 -m mmtinyvim.datasets.make_demo_data --task imagenet --out-root /tmp/dd --num-train 2048 --num-val 250 --quiet > /dev/null 2>&1 || python3 -m mmtinyvim.datasets.make_demo_data --task imagenet --out-root /tmp/dd --num-train 2048 --num-val 250 > /dev/null 2>&1
D=/tmp/dd/imagenet
OPTS="train_dataloader.dataset.data_root=$D val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D train_cfg.max_epochs=2 train_dataloader.num_workers=8 val_dataloader.num_workers=4 default_hooks.logger.interval=2 randomness.seed=0"
for flag in ${G1_FLAGS:-"" "--cuda-graph"}; do
  name=dist_t2${flag:+_cuda_graph}
  PYTHON=python3 PORT=29513 timeout 150 bash tools/dist_train.sh configs/mobilemamba_t2_in1k.py 2 $flag --work-dir /tmp/$name --cfg-options $OPTS > $OUT/$name.log 2>&1
  echo "$name rc=$?"; grep -E "Epoch\(train\)|Epoch\(val\)|Error|rror:" $OUT/$name.log | cut -c1-200 | tail -8
done
date -u
[ -n "${G1_SKIP_TESTS:-}" ] && exit 0
timeout 150 python3 -m pytest -q -s -p no:cacheprovider tests/test_accelerate.py > $OUT/g1_test_accelerate.log 2>&1
grep -E "max\|d\||passed|failed|Error" $OUT/g1_test_accelerate.log | cut -c1-250 | tail -20
date -u
