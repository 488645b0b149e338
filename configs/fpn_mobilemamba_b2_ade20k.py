# MobileMamba-B2 + Semantic FPN. Not published: the B4 recipe
# (fpn_mobilemamba_b4_ade20k.py) with B2 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./fpn_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b2.pth')),
    neck=dict(in_channels=[200, 376, 448]))
