# COCO 2017 box detection: mmdet 3.x's own dataset base (Resize
# 1333x800 keep-ratio, flip 0.5; single-scale test without flip) with
# CheckedCocoDataset (mmdet's CocoDataset plus one clear error for a missing
# path or an empty image list) and the image-size check in the test pipeline.
_base_ = ['mmdet::_base_/datasets/coco_detection.py']

dataset_type = 'CheckedCocoDataset'
# an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
test_pipeline = _base_.test_pipeline[:1] + [
    dict(type='CheckMaxImageSize')
] + _base_.test_pipeline[1:]
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader
