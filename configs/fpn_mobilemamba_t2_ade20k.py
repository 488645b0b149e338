# MobileMamba-T2 + Semantic FPN. Not published: the B4 recipe
# (fpn_mobilemamba_b4_ade20k.py) with T2 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./fpn_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='t2',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_t2.pth')),
    neck=dict(in_channels=[144, 272, 368]))
