"""The main job: Mask R-CNN with TinyViM-S, trained on CPU in minutes.

    python tools/demo/train_demo.py [--work-dir work_dirs/demo]

1. writes the synthetic COCO-format data to ``data/coco`` unless a demo
   dataset is already there;
2. trains ``configs/maskrcnn_tinyvim_s_coco.py`` with the overrides in
   ``DEMO_OVERRIDES`` (small images, short schedule, no ImageNet weights,
   fixed seed), evaluating with COCO bbox and segm mAP at the end;
3. draws the trained model's predictions on a validation image into
   ``<work-dir>/predictions.jpg``.

The same run with the generic tools::

    python tools/train.py configs/maskrcnn_tinyvim_s_coco.py \\
        --work-dir work_dirs/demo --cfg-options <DEMO_OVERRIDES as key=value>
"""
import argparse
import json
import os
import os.path as osp
import runpy
import sys
import time

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TOOLS)
# the image demo is a script beside this one, not a module of the package:
# run by path, whatever sys.path holds
_IMAGE_DEMO = runpy.run_path(osp.join(TOOLS, 'demo', 'image_demo.py'))
paint, write_picture = _IMAGE_DEMO['paint'], _IMAGE_DEMO['write_picture']

CONFIG = osp.join(REPO, 'configs', 'maskrcnn_tinyvim_s_coco.py')
DATA_ROOT = 'data'
NUM_TRAIN, NUM_VAL, IMAGE_SIDE = 200, 40, 256
SCALE = (128, 128)  # images are resized to fit, as Resize(1333, 800) does
BATCH, EPOCHS, WARMUP_ITERS = 2, 3, 50
THREADS = 2  # the README's numbers; torch's default is one per core

# Everything the demo changes in the config, as --cfg-options would.
DEMO_OVERRIDES = {
    # no ImageNet weights offline: the backbone trains from scratch
    'model.backbone.init_cfg': None,
    'train_dataloader.dataset.pipeline.2.scale': SCALE,
    'val_dataloader.dataset.pipeline.2.scale': SCALE,
    'test_dataloader.dataset.pipeline.2.scale': SCALE,
    'train_dataloader.batch_size': BATCH,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0,
    'val_dataloader.persistent_workers': False,
    'test_dataloader.num_workers': 0,
    'test_dataloader.persistent_workers': False,
    # tens of RoIs per image instead of hundreds: small images, few objects
    'model.train_cfg.rpn_proposal.nms_pre': 500,
    'model.train_cfg.rpn_proposal.max_per_img': 100,
    'model.train_cfg.rcnn.sampler.num': 32,
    'model.test_cfg.rpn.nms_pre': 500,
    'model.test_cfg.rpn.max_per_img': 100,
    # a short schedule from scratch: lr 1e-3 after a 50-iteration warm-up,
    # x0.1 for the last epoch
    'optim_wrapper.optimizer.lr': 1e-3,
    'param_scheduler.0.end': WARMUP_ITERS,
    'param_scheduler.0.start_factor': 1e-3,
    'param_scheduler.1.end': EPOCHS,
    'param_scheduler.1.milestones': [EPOCHS - 1],
    'train_cfg.max_epochs': EPOCHS,
    'train_cfg.val_interval': EPOCHS,
    'default_hooks.checkpoint.interval': EPOCHS,
    'default_hooks.logger.interval': 25,
    'randomness.seed': 0,
    'randomness.deterministic': True,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=DATA_ROOT,
                        help='demo data goes to <data-root>/coco')
    parser.add_argument(
        '--threads', type=int, default=THREADS,
        help='intra-op CPU threads (default %(default)s). The float sums are '
        'ordered per thread count, so the metrics are reproducible for one '
        'count (and CPU kind) and differ slightly between counts')
    return parser.parse_args(argv)


class KeepMetrics(Hook):
    """Keeps the metrics of the last evaluation."""
    priority = 'LOWEST'

    def __init__(self):
        self.metrics = {}

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})


def ensure_demo_data(data_root):
    """The COCO-format demo data under ``data_root/coco``, written unless
    the generator wrote it there before."""
    from mmtinyvim.datasets.make_demo_data import (MARKER, make_demo_data,
                                                   marker_text)
    coco = osp.join(data_root, 'coco')
    marker = osp.join(coco, MARKER)
    expected = marker_text('coco', NUM_TRAIN, NUM_VAL, IMAGE_SIDE, 0)
    if osp.isfile(marker):
        with open(marker) as f:
            if f.read() == expected:
                print(f'[demo] using the demo data in {coco}')
                return coco
    elif osp.isdir(coco) and os.listdir(coco):
        sys.exit(f'error: {coco} holds data the demo did not write (no '
                 f'{MARKER}); give another --data-root')
    print(f'[demo] writing demo data to {coco}')
    make_demo_data('coco', data_root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                   image_side=IMAGE_SIDE, seed=0, overwrite=True)
    return coco


def busiest_val_image(coco_root):
    """The validation image with the most objects (the first such)."""
    with open(osp.join(coco_root, 'annotations',
                       'instances_val2017.json')) as f:
        content = json.load(f)
    counts = {image['id']: 0 for image in content['images']}
    for ann in content['annotations']:
        counts[ann['image_id']] += 1
    busiest = max(content['images'], key=lambda im: counts[im['id']])
    return osp.join(coco_root, 'val2017', busiest['file_name'])


def demo_config(coco_root, work_dir):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(DEMO_OVERRIDES)
    root = coco_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    cfg.val_evaluator.ann_file = root + 'annotations/instances_val2017.json'
    cfg.test_evaluator = cfg.val_evaluator
    cfg.work_dir = work_dir
    return cfg


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    coco_root = ensure_demo_data(args.data_root)
    cfg = demo_config(coco_root, args.work_dir)
    runner = Runner.from_cfg(cfg)
    keep = KeepMetrics()
    runner.register_hook(keep)
    runner.train()
    metrics = keep.metrics
    train_time = time.time() - start

    checkpoint = osp.join(args.work_dir, f'epoch_{EPOCHS}.pth')
    image = busiest_val_image(coco_root)
    out_file = osp.join(args.work_dir, 'predictions.jpg')
    visual, _ = paint(image, cfg, checkpoint, score_thr=0.5)
    write_picture(visual, out_file)

    summary = dict(
        config='configs/maskrcnn_tinyvim_s_coco.py',
        bbox_mAP=metrics['coco/bbox_mAP'],
        segm_mAP=metrics['coco/segm_mAP'],
        bbox_mAP_50=metrics['coco/bbox_mAP_50'],
        segm_mAP_50=metrics['coco/segm_mAP_50'],
        epochs=EPOCHS,
        iterations=runner.iter,
        train_images=NUM_TRAIN,
        val_images=NUM_VAL,
        seconds=round(time.time() - start),
        threads=torch.get_num_threads(),
        picture=out_file)
    # a rerun replaces the summary whole (temporary file + rename)
    summary_file = osp.join(args.work_dir, 'demo_summary.json')
    with open(summary_file + '.tmp', 'w') as f:
        json.dump(summary, f, indent=2)
    os.replace(summary_file + '.tmp', summary_file)
    print(f'[demo] trained and evaluated in {train_time / 60:.1f} min '
          f'({summary["seconds"] / 60:.1f} min in all): bbox mAP '
          f'{summary["bbox_mAP"]:.3f}, segm mAP {summary["segm_mAP"]:.3f}; '
          f'predictions drawn to {out_file}')


if __name__ == '__main__':
    main()
