"""Knowledge distillation from a frozen teacher for the ImageNet recipes.

Two recipes (docs/recipes.md#imagenet-tinyvim, #imagenet-mobilemamba):

* ``hard`` (TinyViM, DeiT hard distillation): the distillation head learns
  the teacher's arg-max,
  ``loss = (1 - alpha) * base_loss(head, targets)
  + alpha * CE(dist_head, argmax(teacher))``;
* ``soft`` (MobileMamba †): the single head learns the labels and the
  teacher's distribution,
  ``loss = base_loss(head, targets) + weight * tau**2 * KL(p_t || p_s)``
  with ``p = softmax(logits / tau)``, the KL summed over classes and divided
  by the batch size.

``base_loss`` is the student head's own loss (label smoothing, mixup/cutmix
scores). The teacher sees the batch the student sees, after the batch
augmentations (as in DeiT); optionally re-normalised and resized (MobileMamba's
TResNet-L teacher takes [0, 1] input at 224 px whatever the student's size).
"""
import copy
import os
from numbers import Real
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample

from ..registry import MODELS
from ..utils.checkpoint import safe_torch_load, strict_load, unwrap_state_dict
from .heads.base import DistillableClsHead

__all__ = ['DistillationImageClassifier', 'hard_distillation_loss',
           'soft_distillation_loss']

_COMMON_KEYS = ('type', 'teacher_input_size', 'teacher_mean', 'teacher_std')
_KEYS = {'hard': _COMMON_KEYS + ('alpha', ),
         'soft': _COMMON_KEYS + ('weight', 'tau')}


def hard_distillation_loss(dist_logits: torch.Tensor,
                           teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the distillation head against the teacher's arg-max
    (mean over the batch, no label smoothing), as in DeiT."""
    return F.cross_entropy(dist_logits.float(),
                           teacher_logits.argmax(dim=1))


def soft_distillation_loss(student_logits: torch.Tensor,
                           teacher_logits: torch.Tensor,
                           tau: float) -> torch.Tensor:
    """``tau**2 * KL(softmax(t / tau) || softmax(s / tau))``, summed over
    classes and averaged over the batch (MobileMamba's KD term)."""
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / tau, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction='sum', log_target=True)
    return kl * tau**2 / student_logits.size(0)


class _FrozenTeacher:
    """Holds the teacher outside the student's module tree, so that it is in
    neither ``parameters()`` (optimizer, DDP, EMA) nor ``state_dict()``
    (checkpoints). Copies of the student (the EMA model) share the holder."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


def _check_distill(distill) -> dict:
    if not isinstance(distill, dict) or distill.get('type') not in _KEYS:
        raise ValueError(
            "distill must be a dict with type 'hard' (DeiT: alpha) or 'soft' "
            f'(KL: weight, tau), got {distill!r}')
    kind = distill['type']
    unknown = sorted(set(distill) - set(_KEYS[kind]))
    if unknown:
        extra = (' (tau has no effect on hard distillation: the arg-max does '
                 'not depend on it)' if 'tau' in unknown else '')
        raise ValueError(f'distill: unknown keys {unknown} for {kind!r} '
                         f'distillation; valid: {list(_KEYS[kind])}{extra}')
    cfg = dict(distill)
    if kind == 'hard':
        alpha = cfg.setdefault('alpha', 0.5)
        if not isinstance(alpha, Real) or not 0 <= alpha <= 1:
            raise ValueError(f'distill.alpha must be in [0, 1], got {alpha!r}')
    else:
        for key, default in (('weight', 1.0), ('tau', 1.0)):
            value = cfg.setdefault(key, default)
            if not isinstance(value, Real) or value <= 0:
                raise ValueError(f'distill.{key} must be a positive number, '
                                 f'got {value!r}')
    size = cfg.setdefault('teacher_input_size', None)
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise ValueError('distill.teacher_input_size must be a positive int '
                         f'(square input) or None (the student input size), '
                         f'got {size!r}')
    mean, std = cfg.setdefault('teacher_mean', None), cfg.setdefault(
        'teacher_std', None)
    if (mean is None) != (std is None):
        raise ValueError('distill.teacher_mean and teacher_std go together '
                         '(both None: the teacher takes the student input as '
                         f'normalised), got mean={mean!r}, std={std!r}')
    for name, value in (('teacher_mean', mean), ('teacher_std', std)):
        if value is not None and (not isinstance(value, Sequence)
                                  or len(value) != 3):
            raise ValueError(f'distill.{name} must be 3 numbers (RGB, 0-255 '
                             f'pixel units), got {value!r}')
    if std is not None and min(std) <= 0:
        raise ValueError(f'distill.teacher_std must be positive, got {std!r}')
    return cfg


@MODELS.register_module()
class DistillationImageClassifier(ImageClassifier):
    """``ImageClassifier`` trained with a frozen teacher.

    Args:
        teacher (dict): config of any mmpretrain classifier whose
            ``forward(inputs, mode='tensor')`` returns logits over the
            student's classes, e.g. ``dict(type='TimmClassifier',
            model_name='regnety_160', pretrained=False)``.
        distill (dict): ``dict(type='hard', alpha=0.5)`` or
            ``dict(type='soft', weight=5.0, tau=1.0)``, plus optionally
            ``teacher_input_size`` (int: the teacher's input is resized,
            bicubic, to this square size) and ``teacher_mean`` /
            ``teacher_std`` (RGB, 0-255 units: the student input is
            de-normalised with the data preprocessor's mean/std and
            re-normalised with these; ``mean=0, std=255`` gives [0, 1]).
        teacher_checkpoint (str, optional): the teacher's weights, loaded
            strictly when training starts (:meth:`init_weights`); ``None``
            makes training refuse to start. Building the model (testing,
            FLOP counts) does not need it.
        **kwargs: :class:`mmpretrain.models.ImageClassifier` arguments. The
            head must be a :class:`DistillableClsHead`: with
            ``distillation=True`` for ``hard``, ``False`` for ``soft``.

    The teacher is frozen (``requires_grad=False``), always in eval mode, run
    under ``no_grad``, and lives outside the module tree: it is not in the
    optimizer, the checkpoints or the EMA copy, and moves with the student
    (``.to()``, ``.cuda()``). It is built when first needed (training), so
    prediction, testing and FLOP counts use the student alone and do not
    need the teacher's package (timm).
    """

    def __init__(self,
                 teacher: dict,
                 distill: dict,
                 teacher_checkpoint: Optional[str] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.distill = _check_distill(distill)
        if not isinstance(self.head, DistillableClsHead):
            raise TypeError('DistillationImageClassifier needs a '
                            'DistillableClsHead (TinyViMClsHead, '
                            f'MobileMambaClsHead), got {type(self.head)}')
        if self.head.cal_acc:
            raise ValueError('cal_acc is not supported with distillation '
                             '(training accuracy is meaningless with '
                             'mixup/cutmix scores anyway); set it to False')
        want = self.distill['type'] == 'hard'
        if self.head.distillation != want:
            raise ValueError(
                f"{self.distill['type']} distillation needs a head built with "
                f'distillation={want}: hard distillation trains the '
                'distillation head on the teacher, soft distillation (the '
                'MobileMamba recipe) applies the KD term to the single head')
        if teacher_checkpoint is not None and not isinstance(
                teacher_checkpoint, str):
            raise TypeError('teacher_checkpoint must be a path (str) or None, '
                            f'got {teacher_checkpoint!r}')
        self.teacher_checkpoint = teacher_checkpoint
        if not isinstance(teacher, dict) or 'type' not in teacher:
            raise TypeError('teacher must be a classifier config dict with a '
                            f'type, got {teacher!r}')
        self.teacher_cfg = copy.deepcopy(teacher)
        # built on first use (training): testing, FLOP counts and export of
        # the student need neither the teacher's package nor its memory
        self._frozen_teacher = _FrozenTeacher(None)

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher, built (random weights until
        :meth:`init_weights`) on the student's device at first access."""
        if self._frozen_teacher.module is None:
            with DefaultScope.overwrite_default_scope('mmpretrain'):
                teacher = PRETRAIN_MODELS.build(
                    copy.deepcopy(self.teacher_cfg))
            device = next(self.parameters()).device
            teacher.to(device).requires_grad_(False)
            self._frozen_teacher.module = teacher.eval()
        return self._frozen_teacher.module

    def train(self, mode: bool = True):
        super().train(mode)
        if self._teacher_built:
            self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self._teacher_built:  # moves with the student
            self.teacher._apply(fn, *args, **kwargs)
        return self

    @property
    def _teacher_built(self) -> bool:
        holder = self.__dict__.get('_frozen_teacher')
        return holder is not None and holder.module is not None

    def init_weights(self):
        """The student's initialisation, then the teacher's weights from
        ``teacher_checkpoint`` (strict: every key and shape must match)."""
        super().init_weights()
        if self.teacher_checkpoint is None:
            raise ValueError(
                'No teacher weights: set teacher_checkpoint (the variable at '
                'the top of the config, or --cfg-options '
                'model.teacher_checkpoint=PATH) to the checkpoint of the '
                f'{self.teacher_cfg["type"]} teacher. Training with an '
                'untrained teacher would distil noise.')
        path = os.path.expanduser(self.teacher_checkpoint)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'teacher_checkpoint {path!r} does not exist: set '
                'teacher_checkpoint (the variable at the top of the config, '
                'or --cfg-options model.teacher_checkpoint=PATH) to the '
                f'weights of the {self.teacher_cfg["type"]} teacher')
        state = unwrap_state_dict(safe_torch_load(path))
        strict_load(self.teacher, state,
                    what=f'teacher checkpoint {self.teacher_checkpoint}')
        self.teacher.eval()

    def teacher_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student's (augmented, normalised) batch as the teacher takes
        it."""
        cfg = self.distill
        if cfg['teacher_mean'] is not None:
            preprocessor = self.data_preprocessor
            if getattr(preprocessor, '_enable_normalize', False):
                inputs = inputs * preprocessor.std + preprocessor.mean
            mean = inputs.new_tensor(cfg['teacher_mean']).view(1, -1, 1, 1)
            std = inputs.new_tensor(cfg['teacher_std']).view(1, -1, 1, 1)
            inputs = (inputs - mean) / std
        size = cfg['teacher_input_size']
        if size is not None and tuple(inputs.shape[-2:]) != (size, size):
            inputs = F.interpolate(inputs, size=(size, size), mode='bicubic',
                                   align_corners=False)
        return inputs

    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()
        logits = self.teacher(self.teacher_inputs(inputs), mode='tensor')
        if isinstance(logits, (tuple, list)):  # a two-head teacher
            logits = sum(logits) / len(logits)
        return logits.float()

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        head = self.head
        logits = head.forward_heads(self.extract_feat(inputs))
        teacher_logits = self.teacher_logits(inputs)
        if teacher_logits.shape != logits[0].shape:
            raise ValueError(
                f'The teacher gives logits of shape '
                f'{tuple(teacher_logits.shape)}, the student '
                f'{tuple(logits[0].shape)}: both must classify the same '
                'classes')
        base = head.loss_module(logits[0], head.targets(data_samples),
                                avg_factor=logits[0].size(0))
        if self.distill['type'] == 'hard':
            alpha = self.distill['alpha']
            return dict(
                loss_cls=(1 - alpha) * base,
                loss_distill=alpha * hard_distillation_loss(
                    logits[1], teacher_logits))
        return dict(
            loss_cls=base,
            loss_distill=self.distill['weight'] * soft_distillation_loss(
                logits[0], teacher_logits, self.distill['tau']))
