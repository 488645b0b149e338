"""MobileMamba's classifier: BatchNorm1d + Linear (``bn``, ``l``), optionally
with a distillation head of the same form (``head_dist``)."""
from collections import OrderedDict
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from ...registry import MODELS
from ..layers import fold_bn
from .base import DistillableClsHead

__all__ = ['MobileMambaClsHead']


@torch.no_grad()
def _fold_bn_linear(bn: nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    """One Linear equal to ``linear(bn(x))`` with ``bn`` in eval mode."""
    # bn(x) = x * scale + shift, so linear(bn(x)) = (W * scale) x + W shift + b
    # (torch's folding wants at least a 2-D weight: a column of ones)
    scale, shift = fold_bn(torch.ones_like(bn.weight)[:, None], None, bn)
    scale = scale[:, 0]
    fused = nn.Linear(linear.in_features, linear.out_features,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    fused.weight.copy_(linear.weight * scale[None, :])
    bias = linear.weight @ shift
    if linear.bias is not None:
        bias = bias + linear.bias
    fused.bias.copy_(bias)
    return fused


@MODELS.register_module()
class MobileMambaClsHead(DistillableClsHead):
    """BatchNorm1d + Linear classifier of MobileMamba, optional distillation
    head.

    Meant to follow ``MobileMamba(out_indices=(3,))`` and
    ``GlobalAveragePooling``. Keys equal the official ones (``head.bn.*``,
    ``head.l.*``); an official ``head_dist.*`` maps to ``head.head_dist.*``,
    see :func:`mmtinyvim.models.backbones.mobilemamba.
    convert_official_classifier`.

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the pooled feature (the last width).
        distillation (bool): add ``head_dist`` (BatchNorm1d + Linear); the
            prediction is then the mean of both heads' logits, as in the
            official eval mode. The released MobileMamba models have none.
        loss (dict): classification loss config.
        topk (int | tuple[int]): top-k accuracy reported when ``cal_acc``.
        cal_acc (bool): report training accuracy (of the mean logits).
        init_cfg (dict, optional): defaults to the official truncated normal
            (std 0.02, zero bias) for the Linear layers.

    Training with ``head_dist``: see :class:`DistillableClsHead`.
    :meth:`switch_to_deploy` folds the BatchNorms into the Linears.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distillation: bool = False,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = dict(
                     type='TruncNormal', layer='Linear', std=0.02, bias=0.)):
        super().__init__(num_classes, in_channels, distillation, loss, topk,
                         cal_acc, init_cfg)
        self.deploy = False
        self.bn = nn.BatchNorm1d(in_channels)
        self.l = nn.Linear(in_channels, num_classes)  # noqa: E741
        if distillation:
            self.head_dist = nn.Sequential(OrderedDict(
                bn=nn.BatchNorm1d(in_channels),
                l=nn.Linear(in_channels, num_classes)))

    def forward_heads(self, feats: Tuple[torch.Tensor]
                      ) -> Tuple[torch.Tensor, ...]:
        """Logits of the main head and, with distillation, of ``head_dist``."""
        x = self.pre_logits(feats)
        logits = self.l(self.bn(x))
        if self.distillation:
            return logits, self.head_dist(x)
        return (logits, )

    def switch_to_deploy(self):
        """Fold each BatchNorm1d into its Linear (inference only).
        Idempotent."""
        if self.deploy:
            return
        self.l = _fold_bn_linear(self.bn, self.l)  # noqa: E741
        self.bn = nn.Identity()
        if self.distillation:
            self.head_dist = _fold_bn_linear(self.head_dist.bn,
                                             self.head_dist.l)
        self.deploy = True
