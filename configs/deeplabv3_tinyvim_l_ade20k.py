# TinyViM-L + DeepLabv3. Not published: deeplabv3_tinyvim_b_ade20k.py with
# TinyViM-L.
_base_ = ['./deeplabv3_tinyvim_b_ade20k.py']

model = dict(
    backbone=dict(
        arch='l',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/tinyvim_l_300e.pth')),
    decode_head=dict(in_channels=512),
    auxiliary_head=dict(in_channels=384))
