# MobileMamba-B1 + Semantic FPN. Paper Tab. A8 reports it (mIoU 40.7) but no
# config or log was released; this is the B4 recipe
# (fpn_mobilemamba_b4_ade20k.py) with the B1 backbone and its 300-epoch
# weights.
_base_ = ['./fpn_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b1.pth')),
    neck=dict(in_channels=[200, 376, 448]))
