# mmdet's RetinaNet without its backbone
# (docs/recipes.md#det-mobilemamba-retinanet for the head and train/test
# settings). The leaf configs add the backbone and the FPN's in_channels.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']

model = dict(backbone=dict(_delete_=True))
