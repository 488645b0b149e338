# MobileMamba-B2 + PSPNet. Not published: the B4 recipe
# (pspnet_mobilemamba_b4_ade20k.py) with B2 and its 300-epoch ImageNet weights;
# drop path stays at the recipe's 0.03.
_base_ = ['./pspnet_mobilemamba_b4_ade20k.py']

model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/mobilemamba_b2.pth')),
    decode_head=dict(in_channels=448),
    auxiliary_head=dict(in_channels=376))
