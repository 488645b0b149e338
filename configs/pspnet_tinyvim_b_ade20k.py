# TinyViM-B + PSPNet. Not published: deeplabv3_tinyvim_b_ade20k.py (TinyViM's
# Semantic FPN recipe) with mmseg's PPM decode head on the stride-32 map.
_base_ = ['./deeplabv3_tinyvim_b_ade20k.py']

model = dict(
    decode_head=dict(
        _delete_=True,
        type='PSPHead',
        in_channels=384,
        in_index=3,  # stride 32
        channels=256,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
