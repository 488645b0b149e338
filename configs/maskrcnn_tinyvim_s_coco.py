# TinyViM-S + Mask R-CNN. Not published (TinyViM issue #3: "retrain with a
# slight modification" of the B config): the B/L recipe
# (maskrcnn_tinyvim_b_coco.py) with TinyViM-S.
_base_ = ['./maskrcnn_tinyvim_b_coco.py']

model = dict(
    backbone=dict(
        arch='s',
        # only the 1000-epoch TinyViM-S weights were released (the README's
        # 300-epoch entry has no link); the B/L recipes use 300-epoch ones
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_s_1000e.pth')),
    neck=dict(in_channels=[48, 64, 168, 224]))
