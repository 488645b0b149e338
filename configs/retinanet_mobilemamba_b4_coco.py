# MobileMamba-B4 + RetinaNet. Paper Tab. A6/A7 reports it (box AP 39.5) but no
# config or log was released; this is the B1 recipe
# (retinanet_mobilemamba_b1_coco.py) with the B4 backbone and its 300-epoch
# weights (the paper changes only the backbone).
_base_ = ['./retinanet_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='b4',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b4.pth')),
    neck=dict(in_channels=[200, 376, 448]))
