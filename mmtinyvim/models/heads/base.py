"""What the classifier heads share: a main head plus an optional
distillation head, averaged at inference (DeiT style)."""
from abc import abstractmethod
from typing import List, Optional, Tuple, Union

import torch
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample

__all__ = ['DistillableClsHead']


class DistillableClsHead(ClsHead):
    """A classifier on pooled features with an optional distillation head.

    The prediction is the main head's logits, or with ``distillation`` the
    mean of both heads' logits (the official eval mode). Training without a
    teacher: both heads learn from the labels and the loss is the mean of
    their two losses; with a teacher,
    :class:`mmtinyvim.models.DistillationImageClassifier` computes the loss.

    A family builds its layers after this constructor and implements
    :meth:`forward_heads` and ``switch_to_deploy``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distillation: bool,
                 loss: dict,
                 topk: Union[int, Tuple[int]],
                 cal_acc: bool,
                 init_cfg: Optional[dict]):
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

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        feat = feats[-1]
        if feat.dim() != 2 or feat.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects pooled features (N, '
                f'{self.in_channels}) (put GlobalAveragePooling before it), '
                f'got {tuple(feat.shape)}')
        return feat

    @abstractmethod
    def forward_heads(self, feats: Tuple[torch.Tensor]
                      ) -> Tuple[torch.Tensor, ...]:
        """Logits of the main head and, with distillation, of the
        distillation head."""

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        logits = self.forward_heads(feats)
        if self.distillation:
            return (logits[0] + logits[1]) / 2
        return logits[0]

    @staticmethod
    def targets(data_samples: List[DataSample]) -> torch.Tensor:
        """The batch's labels: mixup/cutmix scores (N, classes) when the
        batch augmentations made them, else class indices (N,)."""
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Loss of the main head, averaged with that of the distillation
        head when present, both on the labels; ``kwargs`` go to the loss
        module."""
        logits = self.forward_heads(feats)
        targets = self.targets(data_samples)
        losses = [self.loss_module(logits[0], targets,
                                   avg_factor=logits[0].size(0), **kwargs)]
        if self.distillation:
            losses.append(self.loss_module(logits[1], targets,
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
