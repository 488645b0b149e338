# MobileMamba-B4 + Mask R-CNN. Paper Tab. A6/A7 reports it (box AP 40.1, mask
# AP 36.9) but no config or log was released; this is the B1 recipe
# (maskrcnn_mobilemamba_b1_coco.py) with the B4 backbone and its 300-epoch
# weights (the paper changes only the backbone).
_base_ = ['./maskrcnn_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='b4',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b4.pth')),
    neck=dict(in_channels=[200, 376, 448]))
