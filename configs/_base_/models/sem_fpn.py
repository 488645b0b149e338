# Semantic FPN (mmseg's fpn_r50 without its backbone and its ImageNet
# weights): ADE20K's 150 classes and 512x512 crops; the leaf configs add the
# backbone and the FPN's in_channels / num_outs.
_base_ = ['mmseg::_base_/models/fpn_r50.py']

data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_delete_=True),
    decode_head=dict(num_classes=150))
