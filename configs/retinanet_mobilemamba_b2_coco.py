# MobileMamba-B2 + RetinaNet. Not published: the B1 recipe
# (retinanet_mobilemamba_b1_coco.py) with B2 and its 300-epoch ImageNet
# weights; drop path stays at the recipe's 0.03.
_base_ = ['./retinanet_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b2.pth')),
    neck=dict(in_channels=[200, 376, 448]))
