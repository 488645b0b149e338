# TinyViM-L + Semantic FPN. The released recipe (fpn_tinyvim_b_ade20k.py), the
# same for B and L. Published: mIoU 44.2 (README).
_base_ = ['./fpn_tinyvim_b_ade20k.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_l_300e.pth')),
    neck=dict(in_channels=[64, 128, 384, 512]))
