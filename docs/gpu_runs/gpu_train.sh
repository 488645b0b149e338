set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry-train/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 PYTHON=python3
nvidia-smi -L > $OUT/gpus.txt
python3 -c "import mmtinyvim, mmdet, mmseg; print('imports ok')" 2>&1 | tail -2
python3 -m mmtinyvim.datasets.make_demo_data --task coco --out-root data --num-train 400 --num-val 40 --image-side 224 > $OUT/data.log 2>&1
python3 -m mmtinyvim.datasets.make_demo_data --task ade --out-root data --num-train 400 --num-val 40 > $OUT/data_ade.log 2>&1
python3 - <<'PY'
import sys; sys.path.insert(0, 'tools/demo')
import train_demo as t
cfg = t.demo_config('data/coco', '/tmp/w')
E = 12
cfg.merge_from_dict({'randomness.deterministic': False,
  'train_cfg.max_epochs': E, 'train_cfg.val_interval': 4,
  'param_scheduler.0.end': 50, 'param_scheduler.1.end': E,
  'param_scheduler.1.milestones': [E - 3, E - 1],
  'default_hooks.checkpoint.interval': E, 'default_hooks.logger.interval': 25})
cfg.dump('/tmp/det_gpu.py')
cfg.merge_from_dict({'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
  'param_scheduler.1.end': 1, 'param_scheduler.1.milestones': [1],
  'default_hooks.logger.interval': 5})
cfg.dump('/tmp/det_amp.py')
PY
echo "== det 2-GPU NCCL"; date
timeout 200 bash tools/dist_train.sh /tmp/det_gpu.py 2 --work-dir $OUT/det > $OUT/det.log 2>&1; echo "rc=$?"
grep -E "coco/bbox_mAP|segm_mAP:|Epoch\(train\).*\[(25|50)/" $OUT/det.log | tail -12
SEG="model.backbone.init_cfg=None train_dataloader.dataset.pipeline.2.scale=(512,256) train_dataloader.dataset.pipeline.3.crop_size=(256,256) val_dataloader.dataset.pipeline.2.scale=(512,256) model.data_preprocessor.size=(256,256) train_dataloader.num_workers=4 val_dataloader.num_workers=2 default_hooks.logger.interval=25 randomness.seed=0"
echo "== seg 2-GPU NCCL"; date
timeout 150 bash tools/dist_train.sh configs/fpn_tinyvim_s_ade20k.py 2 --work-dir $OUT/seg --cfg-options $SEG train_cfg.max_iters=400 train_cfg.val_interval=200 default_hooks.checkpoint.interval=400 > $OUT/seg.log 2>&1; echo "rc=$?"
grep -E "mIoU|Iter\(train\).*\[(25|100|200|300|400)/" $OUT/seg.log | tail -12
echo "== fp16 AMP det 1 GPU"; date
timeout 80 python3 tools/train.py /tmp/det_amp.py --amp --work-dir $OUT/det_amp > $OUT/det_amp.log 2>&1; echo "rc=$?"
grep -E "loss|nan|inf" $OUT/det_amp.log | grep -E "Epoch\(train\)" | tail -3; grep -ic "nan\b" $OUT/det_amp.log
echo "== fp16 AMP seg 1 GPU"; date
timeout 70 python3 tools/train.py configs/fpn_mobilemamba_b1_ade20k.py --amp --work-dir $OUT/seg_amp --cfg-options $SEG train_cfg.max_iters=50 train_cfg.val_interval=50 default_hooks.logger.interval=5 default_hooks.checkpoint.interval=50 > $OUT/seg_amp.log 2>&1; echo "rc=$?"
grep -E "Iter\(train\)" $OUT/seg_amp.log | tail -3; grep -E "mIoU" $OUT/seg_amp.log | tail -2
date
