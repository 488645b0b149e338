# MobileMamba-B4 + PSPNet, 80k iterations at batch 32: the released recipe
# (MM:downstream/seg/configs/pspnet/pspnet_mobilemamba_b4-80k_ade20k-512x512.py
# and MM-LOG:pspnet, docs/recipes.md#seg-mobilemamba to #seg-per-model), the
# DeepLabv3 recipe with a PPM decode head (mmseg's PSPNet head). Published:
# mIoU 36.9.
_base_ = ['./deeplabv3_mobilemamba_b4_ade20k.py']

model = dict(
    decode_head=dict(
        _delete_=True,
        type='PSPHead',
        in_channels=448,
        in_index=2,  # stride 64
        channels=256,
        pool_scales=(1, 2, 3, 6),
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
