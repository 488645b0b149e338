# TinyViM-B + SSDLite at 512x512. Not published: the MobileMamba-B1
# SSDLite-512 recipe (docs/recipes.md#det-ssdlite) with TinyViM-B as in
# ssdlite320_tinyvim_b_coco.py.
_base_ = ['./ssdlite512_mobilemamba_b1_coco.py']

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
