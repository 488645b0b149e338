# Restates mmseg's own base (mmseg::_base_/models/deeplabv3_r50-d8.py) instead of
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
# DeepLabv3 (mmseg deeplabv3_r50-d8 without its backbone): ASPP decode head
# and an FCN auxiliary head; the leaf configs set in_channels / in_index.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        type='ASPPHead',
        channels=256,
        dilations=(1, 12, 24, 36),
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
