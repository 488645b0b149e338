# DeepLabv3 (mmseg's deeplabv3_r50-d8 without its backbone and its ImageNet
# weights): ASPP decode head with 256 channels (MobileMamba's released
# config, docs/recipes.md#seg-mobilemamba) and an FCN auxiliary head,
# ADE20K's 150 classes and 512x512 crops; the leaf configs set in_channels /
# in_index.
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py']

data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_delete_=True),
    decode_head=dict(channels=256, num_classes=150),
    auxiliary_head=dict(num_classes=150))
