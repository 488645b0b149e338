# TinyViM-L + SSDLite (512x512). Not published: ssdlite512_tinyvim_b_coco.py
# with TinyViM-L.
_base_ = ['./ssdlite512_tinyvim_b_coco.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_l_300e.pth')),
    neck=dict(
        in_channels=(384, 512),
        out_channels=(384, 512, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(384, 512, 512, 256, 256, 128)))
