# Restates mmseg's own base (mmseg::_base_/models/fpn_r50.py) instead of
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
# Semantic FPN (mmseg fpn_r50 without its backbone): the leaf configs add the
# backbone and the FPN's in_channels / num_outs.
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
    neck=dict(type='FPN', out_channels=256, num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
