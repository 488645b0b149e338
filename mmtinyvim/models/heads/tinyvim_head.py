"""TinyViM's classifier: a Linear ``head`` plus a DeiT-style ``dist_head``."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from ...registry import MODELS
from .base import DistillableClsHead

__all__ = ['TinyViMClsHead']


@MODELS.register_module()
class TinyViMClsHead(DistillableClsHead):
    """Linear classifier with an optional distillation head, as in TinyViM.

    Meant to follow ``TinyViM(out_indices=(3,))`` (whose ``norm6`` is the
    official final BatchNorm) and ``GlobalAveragePooling``. The official
    classification checkpoints map onto it with
    :func:`mmtinyvim.models.backbones.tinyvim.convert_official_classifier`
    (``head.*`` -> ``head.head.*``, ``dist_head.*`` -> ``head.dist_head.*``).

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the pooled feature (the last width).
        distillation (bool): add ``dist_head``; the prediction is then the
            mean of both heads' logits, as in the official eval mode.
        loss (dict): classification loss config.
        topk (int | tuple[int]): top-k accuracy reported when ``cal_acc``.
        cal_acc (bool): report training accuracy (of the mean logits).
        init_cfg (dict, optional): defaults to the official truncated normal
            (std 0.02, zero bias) for both Linear layers.

    Training without a teacher: both heads learn from the labels and the
    loss is the mean of their two losses. Official TinyViM training uses DeiT
    hard distillation, where ``dist_head`` learns the teacher's arg-max
    instead (:class:`mmtinyvim.models.DistillationImageClassifier`).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distillation: bool = True,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = dict(
                     type='TruncNormal', layer='Linear', std=0.02, bias=0.)):
        super().__init__(num_classes, in_channels, distillation, loss, topk,
                         cal_acc, init_cfg)
        self.head = nn.Linear(in_channels, num_classes)
        if distillation:
            self.dist_head = nn.Linear(in_channels, num_classes)

    def forward_heads(self, feats: Tuple[torch.Tensor]
                      ) -> Tuple[torch.Tensor, ...]:
        """Logits of ``head`` and, with distillation, of ``dist_head``."""
        x = self.pre_logits(feats)
        if self.distillation:
            return self.head(x), self.dist_head(x)
        return (self.head(x), )

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold ``head`` and ``dist_head`` into one Linear (the mean of two
        linear maps is linear): the single-head model the papers count."""
        if not self.distillation:
            return
        merged = nn.Linear(self.in_channels, self.num_classes,
                           device=self.head.weight.device)
        merged.weight.copy_((self.head.weight + self.dist_head.weight) / 2)
        merged.bias.copy_((self.head.bias + self.dist_head.bias) / 2)
        self.head = merged
        del self.dist_head
        self.distillation = False
