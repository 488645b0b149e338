"""TinyViM's classifier: a Linear ``head`` plus a DeiT-style ``dist_head``."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample

from ...registry import MODELS

__all__ = ['TinyViMClsHead']


@MODELS.register_module()
class TinyViMClsHead(ClsHead):
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
    instead; that is a matter of the targets fed to ``dist_head``, supplied
    by overriding :meth:`distillation_targets`.
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
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc,
                         init_cfg=init_cfg)
        for name, value in (('num_classes', num_classes),
                            ('in_channels', in_channels)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.distillation = distillation
        self.head = nn.Linear(in_channels, num_classes)
        if distillation:
            self.dist_head = nn.Linear(in_channels, num_classes)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        feat = feats[-1]
        if feat.dim() != 2 or feat.shape[1] != self.in_channels:
            raise ValueError(
                'TinyViMClsHead expects pooled features (N, '
                f'{self.in_channels}) (put GlobalAveragePooling before it), '
                f'got {tuple(feat.shape)}')
        return feat

    def forward_heads(self, feats: Tuple[torch.Tensor]
                      ) -> Tuple[torch.Tensor, ...]:
        """Logits of ``head`` and, with distillation, of ``dist_head``."""
        x = self.pre_logits(feats)
        if self.distillation:
            return self.head(x), self.dist_head(x)
        return (self.head(x), )

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        logits = self.forward_heads(feats)
        if self.distillation:
            return (logits[0] + logits[1]) / 2
        return logits[0]

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

    def distillation_targets(self, targets: torch.Tensor,
                             data_samples: List[DataSample]) -> torch.Tensor:
        """Targets of ``dist_head``: the labels. Hook for DeiT distillation:
        a subclass returns the teacher's predictions here."""
        return targets

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Mean of the losses of ``head`` (labels) and ``dist_head``
        (:meth:`distillation_targets`); ``kwargs`` go to the loss module."""
        logits = self.forward_heads(feats)
        if 'gt_score' in data_samples[0]:
            targets = torch.stack([s.gt_score for s in data_samples])
        else:
            targets = torch.cat([s.gt_label for s in data_samples])
        losses = [self.loss_module(logits[0], targets,
                                   avg_factor=logits[0].size(0), **kwargs)]
        if self.distillation:
            dist_targets = self.distillation_targets(targets, data_samples)
            losses.append(self.loss_module(logits[1], dist_targets,
                                           avg_factor=logits[1].size(0),
                                           **kwargs))
        result = {'loss': sum(losses) / len(losses)}
        if self.cal_acc:
            if targets.ndim != 1:
                raise ValueError('cal_acc needs hard labels; it is '
                                 'meaningless with mixup/cutmix scores')
            scores = sum(logits) / len(logits)
            accuracy = Accuracy.calculate(scores, targets, topk=self.topk)
            result.update({f'accuracy_top-{k}': a
                           for k, a in zip(self.topk, accuracy)})
        return result
