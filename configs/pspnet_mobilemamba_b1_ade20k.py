# MobileMamba-B1 + PSPNet. Paper Tab. A8 reports it (mIoU 36.5) but no config
# or log was released; this is the B4 recipe (pspnet_mobilemamba_b4_ade20k.py)
# with the B1 backbone and its 300-epoch weights.
_base_ = ['./pspnet_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b1.pth')),
    decode_head=dict(in_channels=448),
    auxiliary_head=dict(in_channels=376))
