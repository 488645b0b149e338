# TinyViM-B on ImageNet-1k, 300 epochs: the released recipe, the same for all
# variants (tinyvim_s_in1k.py, docs/recipes.md#imagenet-tinyvim). Published:
# top-1 81.2.
_base_ = ['./tinyvim_s_in1k.py']

model = dict(
    backbone=dict(arch='b'),
    head=dict(in_channels=384))
