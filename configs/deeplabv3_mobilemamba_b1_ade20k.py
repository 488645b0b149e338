# MobileMamba-B1 + DeepLabv3. Paper Tab. A8 reports it (mIoU 36.7) but no
# config or log was released; this is the B4 recipe
# (deeplabv3_mobilemamba_b4_ade20k.py) with the B1 backbone and its 300-epoch
# weights.
_base_ = ['./deeplabv3_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b1.pth')),
    decode_head=dict(in_channels=448),
    auxiliary_head=dict(in_channels=376))
