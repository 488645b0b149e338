# TinyViM-L + RetinaNet. Not published: retinanet_tinyvim_b_coco.py with
# TinyViM-L.
_base_ = ['./retinanet_tinyvim_b_coco.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_l_300e.pth')),
    neck=dict(in_channels=[64, 128, 384, 512]))
