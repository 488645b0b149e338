# MobileMamba-S6 + Semantic FPN. Not published: the B4 recipe
# (fpn_mobilemamba_b4_ade20k.py) with S6 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./fpn_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='s6',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_s6.pth')),
    neck=dict(in_channels=[192, 384, 448]))
