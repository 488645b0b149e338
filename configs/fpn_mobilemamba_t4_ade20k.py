# MobileMamba-T4 + Semantic FPN. Not published: the B4 recipe
# (fpn_mobilemamba_b4_ade20k.py) with T4 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./fpn_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='t4',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_t4.pth')),
    neck=dict(in_channels=[176, 368, 448]))
