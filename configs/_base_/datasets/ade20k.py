# ADE20K (150 classes): mmseg 1.x's own dataset base (random rescale of
# (2048, 512) by 0.5-2.0, 512x512 crop, flip, photometric distortion;
# single-scale test at (2048, 512) keep-ratio, whole image) with
# CheckedADE20KDataset (mmseg's ADE20KDataset, reduce_zero_label=True, plus
# one clear error for a missing path or an empty image list) and the
# image-size check in the test pipelines. LoadAnnotations takes
# reduce_zero_label from the dataset (given to the transform too, mmseg warns
# that the argument is deprecated).
_base_ = ['mmseg::_base_/datasets/ade20k.py']

dataset_type = 'CheckedADE20KDataset'
train_pipeline = [
    dict(type='LoadAnnotations') if step.type == 'LoadAnnotations' else step
    for step in _base_.train_pipeline
]
# an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
test_pipeline = _base_.test_pipeline[:1] + [dict(type='CheckMaxImageSize')] + [
    dict(type='LoadAnnotations') if step.type == 'LoadAnnotations' else step
    for step in _base_.test_pipeline[1:]
]
tta_pipeline = _base_.tta_pipeline[:1] + [
    dict(type='CheckMaxImageSize')
] + _base_.tta_pipeline[1:]
train_dataloader = dict(
    dataset=dict(type=dataset_type, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader
