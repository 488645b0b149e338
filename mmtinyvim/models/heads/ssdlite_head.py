"""mmdet 3.3.0's SSDHead, made usable for inference.

``SSDHead`` skips ``AnchorHead.__init__`` and so has no ``loss_cls``, which
mmdet 3.3.0's ``BaseDenseHead._predict_by_feat_single`` reads: every SSD
model fails at test time with ``AttributeError: 'SSDHead' object has no
attribute 'loss_cls'``. The released MobileMamba SSDLite runs used a patched
mmdet copy. This subclass only supplies the missing attribute (SSD's loss is
computed in ``loss_by_feat`` without it), so weights, training and outputs
are those of ``SSDHead``.
"""
from mmdet.models.dense_heads import SSDHead

from ...registry import MODELS


@MODELS.register_module()
class SSDLiteHead(SSDHead):
    """``SSDHead`` with the ``loss_cls`` attribute mmdet 3.3.0's predict
    path expects (None: no custom classification activation)."""

    loss_cls = None
