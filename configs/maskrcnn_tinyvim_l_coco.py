# TinyViM-L + Mask R-CNN. The released recipe (maskrcnn_tinyvim_b_coco.py), the
# same for B and L. Published: box AP 44.5, mask AP 40.7 (README).
_base_ = ['./maskrcnn_tinyvim_b_coco.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_l_300e.pth')),
    neck=dict(in_channels=[64, 128, 384, 512]))
