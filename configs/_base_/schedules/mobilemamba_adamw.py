# The optimizer of MobileMamba's released detection and segmentation configs
# (Mask R-CNN, RetinaNet, SSDLite, DeepLabv3/PSPNet; docs/recipes.md#detection
# to #segmentation): AdamW, weight decay 0.05, gradient norm clipped at 0.1.
# Each config sets its lr. 'norm' matches only the SS2D out_norm LayerNorms;
# the backbone BatchNorms (named bn) keep their weight decay, as in the logs.
# MergedGroupsOptimWrapperConstructor (mmtinyvim.engine.optim): mmengine's
# constructor, then the per-parameter groups that paramwise_cfg makes merged
# where their options are equal: the same updates in a few launches.
optim_wrapper = dict(
    # the non-finite guard (mmtinyvim.engine.optim_wrappers): no step on a
    # NaN/inf loss, input or gradient; training stops after
    # max_consecutive_skips skipped steps in a row
    type='NonFiniteGuardOptimWrapper',
    max_consecutive_skips=10,
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=None, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    clip_grad=dict(max_norm=0.1, norm_type=2))
