# MobileMamba-B4 + Semantic FPN, 160k iterations at batch 32: the released
# recipe (MM:downstream/seg/configs/sem_fpn/
# fpn_mobilemamba_b4-160k_ade20k-512x512.py and MM-LOG:fpn, docs/recipes.md
# #seg-mobilemamba to #seg-per-model). Published: mIoU 42.5.
_base_ = [
    './_base_/models/sem_fpn.py', './_base_/datasets/ade20k.py',
    './_base_/default_runtime_seg.py'
]

model = dict(
    backbone=dict(
        type='MobileMamba',
        arch='b4',
        out_indices=(1, 2, 3),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=False,
        drop_path_rate=0.03,
        # 300-epoch B4 ImageNet weights without KD (512 px)
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/mobilemamba_b4.pth')),
    neck=dict(in_channels=[200, 376, 448], num_outs=3),
    decode_head=dict(
        in_channels=[256, 256, 256],
        in_index=[0, 1, 2],
        feature_strides=[16, 32, 64]))

# 8 images/GPU x 4 GPUs = 32 (MM-LOG:fpn)
train_dataloader = dict(batch_size=8, num_workers=8)
auto_scale_lr = dict(enable=False, base_batch_size=32)

# lr_mult 10 reaches every decode_head.* parameter (1.2e-3); 'norm' matches
# only the SS2D out_norm LayerNorms. No gradient clipping.
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',  # no step on NaN/inf
    # equal per-parameter groups merged (mmtinyvim.engine.optim)
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'pos_block': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'head': dict(lr_mult=10.)
        }))

# warm-up from 1e-6 x lr over 1500 iterations, constant to 80k, cosine to 0
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(
        type='CosineAnnealingLR',
        begin=max_iters // 2,
        T_max=max_iters // 2,
        end=max_iters,
        by_epoch=False,
        eta_min=0)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=16000))
