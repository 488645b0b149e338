# TinyViM-B + Semantic FPN, 40k iterations at batch 32: the released recipe
# (TV:segmentation/configs/sem_fpn/fpn_tinyvim_b_ade20k_40k.py, mmseg 0.30)
# in mmseg 1.x, docs/recipes.md#seg-tinyvim-fpn. Published: mIoU 41.9.
_base_ = [
    './_base_/models/sem_fpn.py', './_base_/datasets/ade20k.py',
    './_base_/default_runtime_seg.py'
]

model = dict(
    backbone=dict(
        type='TinyViM',
        arch='b',
        out_indices=(0, 1, 2, 3),
        # the ResNet base's settings were swallowed: BN trains, nothing frozen
        frozen_stages=-1,
        norm_eval=False,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/tinyvim_b_300e.pth')),
    neck=dict(in_channels=[48, 96, 192, 384]))

# Test images are resized (not padded) so both sides are multiples of 32,
# as the released AlignResize did: keep-ratio resize, then a second resize
# up to the next multiple of 32.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
    dict(type='CheckMaxImageSize'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# 4 images/GPU x 8 GPUs = 32 ("8 gpu instead of 4, so lr x2 and iters /2")
train_dataloader = dict(batch_size=4, num_workers=4)
auto_scale_lr = dict(enable=False, base_batch_size=32)

optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',  # no step on NaN/inf
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))

max_iters = 40000
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=4000))
