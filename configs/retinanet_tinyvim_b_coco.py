# TinyViM-B + RetinaNet (FPN). Not published: TinyViM's only detection recipe
# is its Mask R-CNN one (docs/recipes.md#det-tinyvim-maskrcnn), used here
# unchanged (backbone settings, AdamW 2e-4 / wd 0.05, 12-epoch step schedule,
# batch 16) with mmdet's RetinaNet head on strides 8-128.
_base_ = [
    './_base_/models/retinanet_fpn.py',
    './_base_/datasets/coco_detection.py', './_base_/default_runtime_det.py'
]

model = dict(
    backbone=dict(
        type='TinyViM',
        arch='b',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/tinyvim_b_300e.pth')),
    # start_level=1: laterals at strides 8, 16, 32, extra convs at 64, 128
    neck=dict(in_channels=[48, 96, 192, 384]))

train_dataloader = dict(batch_size=2, num_workers=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)

optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',  # no step on NaN/inf
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))

max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
randomness = dict(seed=0)
