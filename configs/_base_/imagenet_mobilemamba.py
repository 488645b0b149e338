# The MobileMamba ImageNet-1k recipe shared by all six variants, 300 epochs,
# no distillation: MM:configs/mobilemamba/*.py, confirmed by the MM-IN:*
# logs (docs/recipes.md#imagenet-mobilemamba: "all twelve configs share the
# values below"). A variant config (configs/mobilemamba_<v>_in1k.py) sets what
# differs: arch, drop path, head width and the resolution with its pipelines.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    './default_runtime_cls.py'
]

# set by each variant (docs/recipes.md#mobilemamba-variants,
# #imagenet-mobilemamba): arch, drop_path_rate, in_channels (the last stage
# width) and img_size, the training resolution, with the pipelines at that
# resolution
img_size = None
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MobileMamba',
        arch=None,
        out_indices=(3, ),
        drop_path_rate=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MobileMambaClsHead',
        num_classes=1000,
        in_channels=None,
        distillation=False,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    # timm Mixup: mixup 0.8 / cutmix 1.0, one of the two per batch
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# The data preprocessor, pipelines and evaluator are mmpretrain's
# imagenet_bs64_swin_224 dataset base, with the resolution left to the
# variant (None here): timm create_transform's RandomResizedCrop (bicubic),
# flip, rand-m9-mstd0.5-inc1, random erasing 0.25 in 'pixel' mode; test:
# resize to int(img_size / 0.875), centre crop img_size (crop ratio 0.875),
# bicubic; top-1/top-5 accuracy. deviation: timm's 'random' interpolation
# (bilinear or bicubic per image) has no mmpretrain equivalent; bicubic is
# used. Ours adds the image-size check to the test pipeline.
dataset_type = 'CheckedImageNet'
train_pipeline = [
    dict(step, scale=None) if step.type == 'RandomResizedCrop' else step
    for step in _base_.train_pipeline
]
test_pipeline = _base_.test_pipeline[:1] + [
    # an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
    dict(type='CheckMaxImageSize')
] + [
    dict(step, scale=None) if step.type == 'ResizeEdge' else
    dict(step, crop_size=None) if step.type == 'CenterCrop' else step
    for step in _base_.test_pipeline[1:]
]

# 128 images/GPU x 8 GPUs = 1024, last incomplete batch dropped
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    dataset=dict(type=dataset_type, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=125,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader

# lr 3e-3 = 1.5e-3 x 1024 / 512 as the code scales it (the paper's text says
# 1.5e-3, docs/recipes.md#mobilemamba-disagreements item 1); weight decay 0.05
# on all but 1-D tensors; gradient norm clipped at 5; AMP.
optim_wrapper = dict(
    # AMP with the non-finite guard (mmtinyvim.engine.optim_wrappers): no
    # step on a NaN/inf loss, input or gradient; training stops after
    # max_consecutive_skips skipped steps in a row
    type='NonFiniteGuardAmpOptimWrapper',
    max_consecutive_skips=10,
    # equal per-parameter groups merged (mmtinyvim.engine.optim)
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW',
        lr=3e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0, norm_type=2))
auto_scale_lr = dict(base_batch_size=1024)

# per iteration: linear warm-up over 20 epochs from 3e-6, cosine to 3e-5
max_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 20, eta_min=3e-5,
         by_epoch=True, begin=20, end=max_epochs,
         convert_to_iter_based=True)
]
# evaluated every 5 epochs, every epoch from epoch 200
train_cfg = dict(
    by_epoch=True,
    max_epochs=max_epochs,
    val_interval=5,
    dynamic_intervals=[(200, 1)])
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook', interval=15, save_best='auto'))

# EMA 0.9998 per iteration over all weights and buffers; the published
# numbers are those of the EMA weights, which mmengine validates.
# (after the runtime's hooks, which a plain list here would drop)
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', momentum=2e-4, update_buffers=True,
         priority='ABOVE_NORMAL')
]
randomness = dict(seed=42)
