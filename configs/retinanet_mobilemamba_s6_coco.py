# MobileMamba-S6 + RetinaNet. Not published: the B1 recipe
# (retinanet_mobilemamba_b1_coco.py) with S6 and its 300-epoch ImageNet
# weights; drop path stays at the recipe's 0.03.
_base_ = ['./retinanet_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='s6',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_s6.pth')),
    neck=dict(in_channels=[192, 384, 448]))
