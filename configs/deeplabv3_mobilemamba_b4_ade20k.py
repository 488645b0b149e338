# MobileMamba-B4 + DeepLabv3, 80k iterations at batch 32: the released recipe
# (MM:downstream/seg/configs/deeplabv3/
# deeplabv3_mobilemamba_b4-80k_ade20k-512x512.py and MM-LOG:deeplabv3,
# docs/recipes.md#seg-mobilemamba to #seg-per-model). Published: mIoU 36.6.
_base_ = [
    './_base_/models/deeplabv3.py', './_base_/datasets/ade20k.py',
    './_base_/default_runtime_seg.py',
    './_base_/schedules/mobilemamba_adamw.py'
]

model = dict(
    backbone=dict(
        type='MobileMamba',
        arch='b4',
        out_indices=(1, 2, 3),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=False,
        drop_path_rate=0.03,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/mobilemamba_b4.pth')),
    # ASPP on the stride-64 map (8x8 for a 512 crop; the dilations exceed it,
    # as published, docs/recipes.md#mobilemamba-disagreements item 14),
    # auxiliary head on stride 32
    decode_head=dict(in_channels=448, in_index=2),
    auxiliary_head=dict(in_channels=376, in_index=1))

# 8 images/GPU x 4 GPUs = 32
train_dataloader = dict(batch_size=8, num_workers=8)
auto_scale_lr = dict(enable=False, base_batch_size=32)

optim_wrapper = dict(optimizer=dict(lr=1.2e-4))

# warm-up from 1e-5 x lr over 500 iterations, constant to 40k, cosine to 0
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0,
         end=500),
    dict(
        type='CosineAnnealingLR',
        begin=max_iters // 2,
        T_max=max_iters // 2,
        end=max_iters,
        by_epoch=False,
        eta_min=0)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
