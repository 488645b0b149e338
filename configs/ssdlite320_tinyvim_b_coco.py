# TinyViM-B + SSDLite at 320x320. Not published: no TinyViM single-stage
# recipe exists, so this is the only published SSDLite recipe for these
# backbones, MobileMamba-B1's (docs/recipes.md#det-ssdlite), with TinyViM's
# stride-16/32 maps and TinyViM's own backbone settings (BN trains, no drop
# path).
_base_ = ['./ssdlite320_mobilemamba_b1_coco.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='TinyViM',
        arch='b',
        out_indices=(2, 3),  # strides 16, 32
        frozen_stages=-1,
        norm_eval=False,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/tinyvim_b_300e.pth')),
    neck=dict(
        in_channels=(192, 384),
        out_channels=(192, 384, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(192, 384, 512, 256, 256, 128)))
