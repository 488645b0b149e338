# TinyViM-S + Semantic FPN. Not published: fpn_tinyvim_b_ade20k.py with
# TinyViM-S.
_base_ = ['./fpn_tinyvim_b_ade20k.py']

model = dict(
    backbone=dict(
        arch='s',
        # only the 1000-epoch TinyViM-S weights were released (the README's
        # 300-epoch entry has no link); the B/L recipes use 300-epoch ones
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_s_1000e.pth')),
    neck=dict(in_channels=[48, 64, 168, 224]))
