"""timm-style use with torch alone: :func:`create_model`, :func:`list_models`.

A model name is a variant of :data:`mmtinyvim.models.zoo.VARIANTS` written
with an underscore (``tinyvim_s``, ``mobilemamba_b1``), optionally with the
tag of one of its official weights (``tinyvim_b.1000e_in1k``: the
``config`` of an :class:`~mmtinyvim.models.variants.OfficialWeights`); the
default weights are those the detection and segmentation configs start
from. ``pretrained_cfg`` is derived from the variant's record
(:mod:`mmtinyvim.models.variants`) and its backbone.

Weights are never downloaded: ``pretrained=True`` reads the official file
from ``pretrained_file`` or from the cache folder (``$MMTINYVIM_HOME``,
default ``~/.cache/mmtinyvim``) under its official name, and says where to
get it when it is not there.
"""
import difflib
import fnmatch
import inspect
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn

from .backbones.base import MambaBackboneBase
from .classifier import (FIRST_CONV, HEADS, Classifier, feature_info,
                         load_backbone_checkpoint, pool_size)
from .pretrained import MissingPretrainedError
from .variants import (EVALUATION, IMAGENET_CLASSES, LICENCES, RECORDS,
                       REPOSITORIES, OfficialWeights)
from .zoo import FAMILIES, VARIANTS, paper_resolution

__all__ = ['create_model', 'list_models', 'pretrained_cfg', 'cache_dir',
           'MODEL_NAMES']

#: model name -> variant ('tinyvim_s' -> 'tinyvim-s')
MODEL_NAMES: Dict[str, str] = {v.replace('-', '_'): v for v in VARIANTS}
CACHE_ENV = 'MMTINYVIM_HOME'
DEFAULT_CACHE = '~/.cache/mmtinyvim'


def list_models(pattern: str = '*') -> List[str]:
    """The model names matching the shell-style ``pattern``, in the zoo's
    order."""
    return [name for name in MODEL_NAMES if fnmatch.fnmatch(name, pattern)]


def cache_dir() -> str:
    """Where ``pretrained=True`` looks for the official files."""
    return osp.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _weights(variant: str) -> Dict[str, OfficialWeights]:
    """tag -> official weights, the default first."""
    record = RECORDS[variant]
    ordered = sorted(record.weights,
                     key=lambda w: w.file != record.backbone_weights)
    return {w.config: w for w in ordered}


def parse_name(name: str) -> Tuple[str, str, str]:
    """(model name, variant, weights tag) of ``name`` or ``name.tag``."""
    if not isinstance(name, str):
        raise TypeError(f'model name must be a str, got {type(name).__name__}')
    model, _, tag = name.partition('.')
    if model not in MODEL_NAMES:
        close = difflib.get_close_matches(model, MODEL_NAMES, n=2)
        hint = f' (did you mean {" or ".join(close)}?)' if close else ''
        raise ValueError(f'Unknown model {name!r}{hint}; valid: '
                         f'{", ".join(MODEL_NAMES)}')
    variant = MODEL_NAMES[model]
    tags = _weights(variant)
    if tag and tag not in tags:
        raise ValueError(f'Unknown weights tag {tag!r} of {model}; valid: '
                         f'{", ".join(tags)} (default {next(iter(tags))})')
    return model, variant, tag or next(iter(tags))


def pretrained_cfg(name: str) -> dict:
    """The model's ``pretrained_cfg`` (timm's keys, plus ``official_file``
    and ``repository``): input size, pooled size, the official test
    transform, the official file and where it is published, its licence."""
    model, variant, tag = parse_name(name)
    family = variant.partition('-')[0]
    weights = _weights(variant)[tag]
    resolution = paper_resolution(variant)
    evaluation = EVALUATION[family]
    head = HEADS[family](1, 1, FAMILIES[family].distillation_head)
    return dict(
        architecture=model, tag=tag, input_size=(3, resolution, resolution),
        pool_size=pool_size(variant, resolution),
        crop_pct=evaluation.crop_pct, interpolation=evaluation.interpolation,
        mean=evaluation.mean, std=evaluation.std,
        num_classes=IMAGENET_CLASSES, first_conv=FIRST_CONV,
        classifier=tuple(f'head.{n}' for n in head.classifier_names),
        official_file=weights.file, origin_url=weights.url,
        repository=REPOSITORIES[family], license=LICENCES[family],
        description=weights.description)


def _features_cfg(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items()
            if k not in ('num_classes', 'classifier', 'pool_size')}


def missing_weights_message(name: str, path: str, given: bool) -> str:
    cfg = pretrained_cfg(name)
    where = ('' if given else
             f' (${CACHE_ENV}, default {DEFAULT_CACHE}, under its official '
             'name)')
    also = '' if given else ', or pass pretrained_file=PATH'
    return (f'Pretrained weights for {cfg["architecture"]} not found: '
            f'{path}{where}. Download the official {cfg["description"]} '
            f'file {cfg["official_file"]} from {cfg["origin_url"]} (linked '
            f'from {cfg["repository"]}#readme) and save it as {path}{also}. '
            'mmtinyvim never downloads.')


def resolve_pretrained(name: str, pretrained: Union[bool, str],
                       pretrained_file: Optional[str]) -> Optional[str]:
    """The weights file to load, None for none; raises
    :class:`MissingPretrainedError` naming where to get a missing one."""
    if isinstance(pretrained, (str, os.PathLike)):
        if pretrained_file is not None:
            raise ValueError('Give the weights once: pretrained=PATH or '
                             'pretrained=True with pretrained_file=PATH')
        pretrained_file, pretrained = pretrained, True
    elif not isinstance(pretrained, bool):
        raise TypeError('pretrained must be a bool or a path, got '
                        f'{type(pretrained).__name__}')
    if not pretrained:
        if pretrained_file is not None:
            raise ValueError('pretrained_file is loaded only with '
                             'pretrained=True (or pass pretrained=PATH)')
        return None
    given = pretrained_file is not None
    path = (osp.expanduser(os.fspath(pretrained_file)) if given else
            osp.join(cache_dir(), pretrained_cfg(name)['official_file']))
    if not osp.isfile(path):
        raise MissingPretrainedError(
            missing_weights_message(name, path, given))
    return path


def default_out_indices(variant: str) -> Tuple[int, ...]:
    """The backbone's own default outputs (what the dense configs use)."""
    backbone = FAMILIES[variant.partition('-')[0]].backbone
    default = inspect.signature(backbone).parameters['out_indices'].default
    return tuple(default)


def create_model(name: str,
                 pretrained: Union[bool, str] = False,
                 features_only: bool = False,
                 out_indices: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 pretrained_file: Optional[str] = None,
                 **kwargs) -> nn.Module:
    """A TinyViM or MobileMamba model as a plain PyTorch module.

    Args:
        name (str): one of :func:`list_models` (``tinyvim_s``,
            ``mobilemamba_t2`` ...), optionally ``name.tag`` to pick one of
            the variant's official weights (``tinyvim_b.1000e_in1k``).
        pretrained (bool | str): True loads the official ImageNet weights
            from ``pretrained_file`` or from :func:`cache_dir`; a path loads
            that file. Official checkpoints and checkpoints of this
            package's classifier layout are accepted; loading is safe
            (``weights_only``) and strict.
        features_only (bool): return the backbone, whose forward gives the
            feature maps of ``out_indices`` (default: the backbone's own
            default, as the dense configs use); ``model.feature_info`` says
            their channels and reductions.
        out_indices (Sequence[int], optional): outputs of the backbone, only
            with ``features_only``.
        num_classes (int, optional): classes of the classifier (default
            1000, the ImageNet head; 0: pooled features). Pretrained weights
            keep their head only where it fits.
        pretrained_file (str, optional): the weights file for
            ``pretrained=True``.
        **kwargs: ``global_pool`` ('avg' or ''), and the backbone's
            ``drop_path_rate``, ``scan_backend``, ``frozen_stages``,
            ``norm_eval``.

    Returns:
        :class:`~mmtinyvim.models.classifier.Classifier`, or with
        ``features_only`` the family's backbone (``TinyViM`` /
        ``MobileMamba``), with ``pretrained_cfg`` (and timm's alias
        ``default_cfg``).
    """
    model_name, variant, tag = parse_name(name)
    full_name = f'{model_name}.{tag}'
    path = resolve_pretrained(full_name, pretrained, pretrained_file)
    cfg = pretrained_cfg(full_name)
    if features_only:
        if num_classes is not None:
            raise ValueError('num_classes is an argument of the classifier; '
                             'features_only=True gives the backbone')
        for key in ('global_pool', 'in_chans'):
            if key in kwargs:
                raise ValueError(f'{key} is an argument of the classifier; '
                                 'features_only=True gives the backbone')
        family, arch = variant.split('-')
        indices = (default_out_indices(variant) if out_indices is None else
                   out_indices)
        model: MambaBackboneBase = FAMILIES[family].backbone(
            arch=arch, out_indices=indices, **kwargs)
        if path is not None:
            load_backbone_checkpoint(model, path)
        model.feature_info = feature_info(model)
        cfg = _features_cfg(cfg)
    else:
        if out_indices is not None:
            raise ValueError('out_indices selects feature maps: pass '
                             'features_only=True with it (the classifier '
                             'uses the last stage)')
        model = Classifier(
            variant,
            num_classes=cfg['num_classes'] if num_classes is None else
            num_classes, checkpoint=path, **kwargs)
    model.pretrained_cfg = cfg
    model.default_cfg = cfg
    return model
