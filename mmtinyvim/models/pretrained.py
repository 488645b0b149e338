"""Where the official ImageNet weights the configs load are published, and
one clear error, before any dataset is built, when a local one is missing.

The configs' backbones start from ``checkpoints/<file>`` (the file names the
official repositories use). The backbones load those files as downloaded
(see README "Official weights"), so no conversion is needed for training;
``tools/model_converters/official_to_mmtinyvim.py`` only turns an official
checkpoint into a whole mmpretrain classifier checkpoint (for
``tools/test.py`` on ImageNet).
"""
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

import torch.nn as nn

from .variants import REPOSITORIES, RECORDS

#: file name -> (variant, link to the published file or folder, the
#: repository whose README links it), from the variants' records
#: (:data:`mmtinyvim.models.variants.RECORDS`).
OFFICIAL_WEIGHTS: Dict[str, Tuple[str, str, str]] = {
    weights.file: (weights.description, weights.url,
                   REPOSITORIES[name.partition('-')[0]])
    for name, record in RECORDS.items() for weights in record.weights}

SCRATCH_OVERRIDE = '--cfg-options model.backbone.init_cfg=None'


class MissingPretrainedError(FileNotFoundError):
    """A backbone's ``init_cfg=dict(type='Pretrained', checkpoint=...)``
    names a local file that does not exist."""


def is_remote(path: str) -> bool:
    """URLs (``http://``, ``https://``, ``s3://``, ``open-mmlab://`` ...)
    are fetched by mmengine, not checked here."""
    return '://' in path


def _pretrained_paths(init_cfg) -> Iterator[str]:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'
                and isinstance(cfg.get('checkpoint'), str)):
            yield cfg['checkpoint']


def missing_pretrained_message(path: str, where: str = 'model.backbone'
                               ) -> str:
    """The one message for a missing local pretrained checkpoint."""
    name = osp.basename(path)
    lines = [f'Pretrained checkpoint not found: {path} (the ImageNet weights '
             f'{where}.init_cfg loads before training).']
    if name in OFFICIAL_WEIGHTS:
        variant, link, repo = OFFICIAL_WEIGHTS[name]
        lines.append(
            f'The official {variant} weights are published at {link} '
            f'(linked from {repo}#readme); save the file as {path}. No '
            f'conversion is needed: the backbone loads the official file '
            f'as downloaded.')
    else:
        lines.append(
            'It is not one of the official files the configs name (README, '
            '"Model zoo"); give the path of an existing file (a whole '
            'mmpretrain classifier checkpoint also needs '
            "init_cfg prefix='backbone.').")
    override = SCRATCH_OVERRIDE.replace('model.backbone', where)
    lines.append(f'To train from scratch instead: {override}')
    return '\n'.join(lines)


def check_pretrained_files(model: nn.Module,
                           prefix: Optional[str] = None) -> None:
    """Raise :class:`MissingPretrainedError` for the first module of
    ``model`` whose ``init_cfg`` loads a missing local file."""
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):  # DDP and the other mmengine wrappers
        model = model.module
    for name, module in model.named_modules():
        for path in _pretrained_paths(getattr(module, 'init_cfg', None)):
            if is_remote(path) or osp.isfile(path):
                continue
            where = '.'.join(p for p in ('model', prefix, name) if p)
            raise MissingPretrainedError(
                missing_pretrained_message(path, where))
