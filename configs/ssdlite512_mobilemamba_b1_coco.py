# MobileMamba-B1 + SSDLite at 512x512: the 320-px recipe with only the input
# size changed, anchors included (MM:downstream/det/configs/ssd/
# ssdlite_mobilemamba_b1_8gpu_2lr_512_coco.py, MM-LOG:ssdlite_512,
# docs/recipes.md#det-ssdlite and #mobilemamba-disagreements item 12).
# Published: box AP 29.5.
_base_ = ['./ssdlite320_mobilemamba_b1_coco.py']

input_size = 512
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='Expand',
        mean={{_base_.data_preprocessor.mean}},
        to_rgb={{_base_.data_preprocessor.bgr_to_rgb}},
        ratio_range=(1, 4)),
    dict(
        type='MinIoURandomCrop',
        min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size=0.3),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PhotoMetricDistortion',
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5),
        hue_delta=18),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # an image too large to evaluate is refused (mmtinyvim.datasets.size_limit)
    dict(type='CheckMaxImageSize'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
