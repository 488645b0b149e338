# TinyViM-S + SSDLite (320x320). Not published: ssdlite320_tinyvim_b_coco.py
# with TinyViM-S.
_base_ = ['./ssdlite320_tinyvim_b_coco.py']

model = dict(
    backbone=dict(
        arch='s',
        # only the 1000-epoch TinyViM-S weights were released (the README's
        # 300-epoch entry has no link); the B/L recipes use 300-epoch ones
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_s_1000e.pth')),
    neck=dict(
        in_channels=(168, 224),
        out_channels=(168, 224, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(168, 224, 512, 256, 256, 128)))
