"""The ImageNet classifiers as plain PyTorch modules, and ``feature_info``.

:class:`Classifier` is a family's backbone (its last output only), global
average pooling and the family's head, with the state-dict layout of the
mmpretrain ``ImageClassifier`` the configs train (``backbone.*``,
``head.*``; the pooling has no weights). So a checkpoint of an mmpretrain
run loads as it is, and an official ImageNet checkpoint loads through the
family's ``convert_official_classifier`` (the converter
``tools/model_converters/official_to_mmtinyvim.py`` uses).

The heads hold the layers of ``TinyViMClsHead`` / ``MobileMambaClsHead``
(same names, same initialisation) without mmpretrain's loss and data
samples. The classifier follows timm's conventions (``forward_features``,
``forward_head``, ``forward_intermediates``, ``reset_classifier``,
``num_features``, ``feature_info``), so :mod:`.timm_models` registers it in
timm as it is.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.checkpoint import safe_torch_load, strict_load, unwrap_state_dict
from .backbones import mobilemamba, tinyvim
from .backbones.base import MambaBackboneBase
from .layers import check_image_batch, weights_dtype
from .zoo import FAMILIES, parse_variant

__all__ = ['Classifier', 'FeatureInfo', 'LinearHead', 'NormLinearHead',
           'feature_info', 'load_backbone_checkpoint', 'FIRST_CONV']

# the first convolution of both families' classifiers (timm's first_conv)
FIRST_CONV = 'backbone.patch_embed.0.c'
GLOBAL_POOLS = ('avg', '')


class FeatureInfo(list):
    """A list of ``dict(num_chs, reduction, module, index)``, one per
    feature map, with the accessors of timm's ``FeatureInfo``."""

    def get(self, key: str, idx: Optional[Union[int, Sequence[int]]] = None):
        if idx is None:
            return [info[key] for info in self]
        if isinstance(idx, (list, tuple)):
            return [self[i][key] for i in idx]
        return self[idx][key]

    def channels(self, idx=None):
        return self.get('num_chs', idx)

    def reduction(self, idx=None):
        return self.get('reduction', idx)

    def module_name(self, idx=None):
        return self.get('module', idx)


def _outputs(backbone: MambaBackboneBase) -> List[Tuple[int, int, str, str]]:
    """(channels, stride, module giving the raw map, module giving the
    backbone's output) of every output a backbone of this arch can have."""
    if isinstance(backbone, tinyvim.TinyViM):
        return [(width, stride, f'network.{2 * i}', f'norm{2 * i}')
                for i, (width, stride) in enumerate(
                    zip(backbone.widths, tinyvim.STAGE_STRIDES))]
    channels = (backbone.embed_dims[0], *backbone.embed_dims)
    return [(c, stride, name, name) for c, stride, name in zip(
        channels, mobilemamba.STAGE_STRIDES, mobilemamba.STAGE_NAMES)]


def feature_info(backbone: MambaBackboneBase) -> FeatureInfo:
    """The ``feature_info`` of a backbone: one entry per output it returns
    (its ``out_indices``)."""
    outputs = _outputs(backbone)
    return FeatureInfo(
        dict(num_chs=outputs[i][0], reduction=outputs[i][1],
             module=outputs[i][3], index=i) for i in backbone.out_indices)


def _linear(in_channels: int, num_classes: int) -> nn.Module:
    if num_classes == 0:
        return nn.Identity()
    linear = nn.Linear(in_channels, num_classes)
    # the official heads' initialisation (the mm heads' init_cfg)
    nn.init.trunc_normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)
    return linear


class LinearHead(nn.Module):
    """TinyViM's classifier: ``head`` (Linear) and, with distillation, the
    DeiT-style ``dist_head``; their logits are averaged (the official eval
    output, also used in training here)."""

    def __init__(self, in_channels: int, num_classes: int,
                 distillation: bool):
        super().__init__()
        self.in_channels, self.distillation = in_channels, distillation
        self.reset(num_classes)

    def reset(self, num_classes: int):
        self.head = _linear(self.in_channels, num_classes)
        if self.distillation:
            self.dist_head = _linear(self.in_channels, num_classes)

    @property
    def classifier_names(self) -> Tuple[str, ...]:
        return ('head', 'dist_head') if self.distillation else ('head', )

    def forward(self, x):
        if self.distillation:
            return (self.head(x) + self.dist_head(x)) / 2
        return self.head(x)


def _norm_linear(in_channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        bn=nn.BatchNorm1d(in_channels) if num_classes else nn.Identity(),
        l=_linear(in_channels, num_classes)))


class NormLinearHead(nn.Module):
    """MobileMamba's classifier: BatchNorm1d ``bn`` + Linear ``l``, and with
    distillation ``head_dist`` of the same form (logits averaged)."""

    def __init__(self, in_channels: int, num_classes: int,
                 distillation: bool):
        super().__init__()
        self.in_channels, self.distillation = in_channels, distillation
        self.reset(num_classes)

    def reset(self, num_classes: int):
        main = _norm_linear(self.in_channels, num_classes)
        self.bn, self.l = main.bn, main.l  # noqa: E741
        if self.distillation:
            self.head_dist = _norm_linear(self.in_channels, num_classes)

    @property
    def classifier_names(self) -> Tuple[str, ...]:
        return ('l', 'head_dist.l') if self.distillation else ('l', )

    def forward(self, x):
        logits = self.l(self.bn(x))
        if self.distillation:
            return (logits + self.head_dist(x)) / 2
        return logits


HEADS = {'tinyvim': LinearHead, 'mobilemamba': NormLinearHead}


def _stage_maps(backbone: MambaBackboneBase, x: torch.Tensor, last: int
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """(maps as the stages leave them, the same cropped to the input) of
    outputs 0..last, computed as the backbone's forward computes them."""
    name = type(backbone).__name__
    x = check_image_batch(x, name=name, dtype=weights_dtype(backbone))
    if not isinstance(backbone, tinyvim.TinyViM):
        maps = []
        for stage in mobilemamba.STAGE_NAMES[:last + 1]:
            x = getattr(backbone, stage)(x)
            maps.append(x)
        return maps, maps
    height, width = x.shape[2:]
    size = tinyvim.SIZE_DIVISOR
    x = backbone.patch_embed(F.pad(x, (0, -width % size, 0, -height % size)))
    maps, cropped = [], []
    for stage in range(last + 1):
        if stage > 0:
            x = backbone.network[2 * stage - 1](x)
        x = backbone.network[2 * stage](x)
        stride = tinyvim.STAGE_STRIDES[stage]
        maps.append(x)
        cropped.append(x[..., :(height + stride - 1) // stride,
                         :(width + stride - 1) // stride])
    return maps, cropped


class Classifier(nn.Module):
    """ImageNet classifier of a variant, plain PyTorch.

    Args:
        variant (str): 'tinyvim-s', 'mobilemamba-t2' ... (see
            :data:`mmtinyvim.models.zoo.VARIANTS`).
        num_classes (int): classes of the head; 0 leaves the pooled
            features (no head).
        global_pool (str): 'avg' (the official pooling) or '' (none: the
            output is the last feature map; needs ``num_classes=0``).
        in_chans (int): input channels; the families take RGB only.
        checkpoint (str, optional): weights loaded strictly at the end of
            construction, see :meth:`load_checkpoint`.
        **backbone_kwargs: ``drop_path_rate``, ``scan_backend``,
            ``frozen_stages``, ``norm_eval`` of the backbone.
    """

    def __init__(self,
                 variant: str,
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 in_chans: int = 3,
                 checkpoint: Optional[str] = None,
                 **backbone_kwargs):
        super().__init__()
        family, arch = parse_variant(variant)
        spec = FAMILIES[family]
        if in_chans != 3:
            raise ValueError(f'{spec.backbone.__name__} takes RGB images: '
                             f'in_chans must be 3, got {in_chans!r}')
        if 'out_indices' in backbone_kwargs:
            raise ValueError('out_indices selects feature maps: pass '
                             'features_only=True with it (the classifier '
                             'uses the last stage)')
        self.family = family
        # the variant, as the strict loader's messages name it
        self.arch_name = variant.replace('-', '_')
        self.backbone = spec.backbone(
            arch=arch, out_indices=(spec.backbone.num_outputs - 1, ),
            **backbone_kwargs)
        self.num_features = self.head_hidden_size = \
            self.backbone.out_channels[-1]
        self.head = HEADS[family](self.num_features, 0,
                                  spec.distillation_head)
        self.reset_classifier(num_classes, global_pool)
        self.feature_info = FeatureInfo(
            dict(num_chs=c, reduction=s, module=f'backbone.{raw}', index=i)
            for i, (c, s, raw, _) in enumerate(_outputs(self.backbone)))
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)

    # ------------------------------------------------------------ the head

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int,
                         global_pool: Optional[str] = None):
        """A new head for ``num_classes`` (0: none); ``global_pool`` 'avg'
        or '' (no pooling, only without a head)."""
        if global_pool is None:
            global_pool = self.global_pool
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError('num_classes must be an int >= 0 (0: no head), '
                             f'got {num_classes!r}')
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f'global_pool must be one of {GLOBAL_POOLS}, '
                             f'got {global_pool!r}')
        if global_pool == '' and num_classes:
            raise ValueError("global_pool='' (no pooling) needs "
                             'num_classes=0: the head takes pooled features')
        self.global_pool = global_pool
        self.num_classes = num_classes
        device = next(self.backbone.parameters()).device
        self.head.reset(num_classes)
        self.head.to(device)

    # ------------------------------------------------------------- forward

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, (N, num_features, H / stride, W /
        stride)."""
        return self.backbone(x)[-1]

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, Sequence[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False):
        """timm's ``forward_intermediates``: the feature maps of the
        outputs ``indices`` (None: all; an int n: the last n; negative
        indices count from the end) as the stages leave them, and unless
        ``intermediates_only`` the final features (:meth:`forward_features`).
        ``norm`` passes the last output through the final norm (TinyViM's
        ``norm6``; MobileMamba has none)."""
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        count = len(self.feature_info)
        if indices is None:
            indices = count
        if isinstance(indices, int):
            if not 0 < indices <= count:
                raise ValueError(f'indices {indices} as a count must be in '
                                 f'[1, {count}]')
            indices = range(count - indices, count)
        indices = self.backbone._parse_out_indices(list(indices))
        last = count - 1
        run_to = indices[-1] if (stop_early and intermediates_only) else last
        maps, cropped = _stage_maps(self.backbone, x, run_to)
        intermediates = [cropped[i] for i in indices]
        final = None
        if not intermediates_only or (norm and last in indices):
            final = self._final(maps[last], cropped[last])
        if norm and last in indices:
            intermediates[-1] = final
        if intermediates_only:
            return intermediates
        return final, intermediates

    def _final(self, raw: torch.Tensor, cropped: torch.Tensor):
        """The last output as the backbone returns it."""
        if not isinstance(self.backbone, tinyvim.TinyViM):
            return cropped
        # as TinyViM.forward: its output norm, then the crop
        out = getattr(self.backbone, _outputs(self.backbone)[-1][3])(raw)
        return out[..., :cropped.shape[2], :cropped.shape[3]]

    # ------------------------------------------------------------- loading

    def load_checkpoint(self, path: str) -> None:
        """Load an official ImageNet checkpoint of the variant, or one of
        this layout (an mmpretrain run of the configs), strictly through
        the safe loader. A head whose shape does not fit ``num_classes``
        (or no head) is left out and keeps its initialisation."""
        state = unwrap_state_dict(safe_torch_load(path))
        if not any(k.startswith('backbone.') for k in state):
            state = FAMILIES[self.family].module.convert_official_classifier(
                state)
        own = self.state_dict()
        head_keys = [k for k in state if k.startswith('head.')]
        allowed = []
        if any(k not in own or own[k].shape != state[k].shape
               for k in head_keys) or not head_keys:
            state = {k: v for k, v in state.items() if k not in head_keys}
            allowed = [k for k in own if k.startswith('head.')]
        strict_load(self, state, what=f'Checkpoint {path!r}',
                    allow_missing=allowed)


def load_backbone_checkpoint(backbone: MambaBackboneBase, path: str) -> None:
    """Load an official (classification or dense) checkpoint, or a whole
    classifier of :class:`Classifier`'s layout, into a backbone, strictly
    through the safe loader, as its ``init_cfg=dict(type='Pretrained')``
    does (dense-only output norms absent from a classification file keep
    their initialisation)."""
    state: Dict[str, torch.Tensor] = unwrap_state_dict(safe_torch_load(path))
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    state = backbone._filter_checkpoint(state)
    strict_load(backbone, state, what=f'Checkpoint {path!r}',
                allow_missing=backbone._allowed_missing_keys(state))


def pool_size(variant: str, resolution: int) -> Tuple[int, int]:
    """Size of the last feature map for a square input of ``resolution``."""
    family, _ = parse_variant(variant)
    side = math.ceil(resolution / FAMILIES[family].module.STAGE_STRIDES[-1])
    return side, side
