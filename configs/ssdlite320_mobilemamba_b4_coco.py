# MobileMamba-B4 + SSDLite (320x320). Paper Tab. A6/A7 reports it (box AP 23.9)
# but no config or log was released; this is the B1 recipe
# (ssdlite320_mobilemamba_b1_coco.py) with the B4 backbone and its 300-epoch
# weights (the paper changes only the backbone).
_base_ = ['./ssdlite320_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        arch='b4',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b4.pth')),
    neck=dict(
        in_channels=(200, 376),
        out_channels=(200, 376, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(200, 376, 512, 256, 256, 128)))
