# MobileMamba-S6 on ImageNet-1k at 224 px, 300 epochs, no distillation:
# the released recipe (MM:configs/mobilemamba/mobilemamba_s6.py, confirmed by
# the MM-IN:S6 log, docs/recipes.md#imagenet-mobilemamba). Published: top-1
# 78.0 (best-epoch EMA).
_base_ = ['./_base_/imagenet_mobilemamba.py']

# S6 (docs/recipes.md#mobilemamba-variants): drop_path 0, last embed_dim 448,
# trained and tested at 224 px (see also #mobilemamba-disagreements item 2)
img_size = 224
model = dict(
    backbone=dict(arch='s6', drop_path_rate=0),
    head=dict(in_channels=448))

# the shared pipelines at img_size: RandomResizedCrop 224; resize to
# int(224 / 0.875) = 256, centre crop 224
train_pipeline = [
    dict(step, scale=img_size) if step.type == 'RandomResizedCrop' else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, scale=int(img_size / 0.875)) if step.type == 'ResizeEdge' else
    dict(step, crop_size=img_size) if step.type == 'CenterCrop' else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
