# MobileMamba-T4 + Mask R-CNN. Not published: the B1 recipe
# (maskrcnn_mobilemamba_b1_coco.py) with T4 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./maskrcnn_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='t4',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_t4.pth')),
    neck=dict(in_channels=[176, 368, 448]))
