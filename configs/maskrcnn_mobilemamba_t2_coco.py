# MobileMamba-T2 + Mask R-CNN. Not published: the B1 recipe
# (maskrcnn_mobilemamba_b1_coco.py) with T2 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./maskrcnn_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='t2',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_t2.pth')),
    neck=dict(in_channels=[144, 272, 368]))
