# mmdet's R50-FPN Mask R-CNN without its backbone: the leaf configs add the
# backbone and the FPN's in_channels. Heads, train_cfg and test_cfg are the
# mmdet defaults that both papers keep (docs/recipes.md#det-tinyvim-maskrcnn,
# #det-mobilemamba-maskrcnn).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

model = dict(backbone=dict(_delete_=True))
