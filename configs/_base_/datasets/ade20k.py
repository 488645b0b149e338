# Restates mmseg's own base (mmseg::_base_/datasets/ade20k.py) instead of
# inheriting it, as `mmseg::` cannot be resolved on the onedl stack
# (onedl-mmengine 0.10.12, onedl-mmsegmentation 1.4.2): Config.fromfile
# raises "ModuleNotFoundError: mmsegmentation is not installed".
# mmengine.config.Config._get_cfg_path maps the scope through
# mmengine.config.utils.MODULE2PACKAGE ('mmseg' -> 'mmsegmentation', the
# OpenMMLab distribution name), and mmengine.utils.is_installed finds no
# distribution and no module of that name (there they are
# onedl-mmsegmentation and mmseg), although mmseg/.mim/configs is
# installed. mmdet:: and mmpretrain:: map to their module names and
# resolve on both stacks; mmengine 0.10.7 resolves mmseg:: too.
# (tests/test_config_bases.py fails once the onedl stack resolves it.)
# ADE20K (150 classes), mmseg 1.x standard pipeline: random rescale of
# (2048, 512) by 0.5-2.0, 512x512 crop, flip, photometric distortion;
# single-scale test at (2048, 512) keep-ratio, whole image.
# CheckedADE20KDataset is mmseg's ADE20KDataset (reduce_zero_label=True) plus
# one clear error for a missing path or an empty image list. LoadAnnotations
# takes reduce_zero_label from the dataset (given to the transform too, mmseg
# warns that the argument is deprecated).
dataset_type = 'CheckedADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
    dict(type='CheckMaxImageSize'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # the ground truth is loaded after the resize: metrics use the original
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
