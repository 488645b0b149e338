"""What the backbones take from OpenMMLab, with torch-only stand-ins.

With mmengine and mmcv installed these are their own classes, so an
OpenMMLab user gets exactly the modules as before (mmengine's
``BaseModule`` and its ``init_cfg`` handling, mmcv's ``DropPath``, mmengine's
logger). With torch alone:

* :class:`BaseModule` keeps ``init_cfg`` and runs the children's
  ``init_weights``; the backbones load ``init_cfg=dict(type='Pretrained')``
  themselves, any other ``init_cfg`` needs mmengine and says so;
* :class:`DropPath` is timm's when timm is installed, else
  :class:`LocalDropPath` (stochastic depth as mmcv and timm compute it:
  zero whole samples with probability p, scale the others by 1 / (1 - p));
* :class:`MMLogger` gives the ``mmtinyvim`` logger of :mod:`logging`.
"""
import copy
import logging
from typing import List, Optional, Union

import torch
import torch.nn as nn

from ..stack import check_stack, importable

__all__ = ['BaseModule', 'DropPath', 'MMLogger', 'LocalDropPath',
           'TorchBaseModule']


class TorchBaseModule(nn.Module):
    """The part of mmengine's ``BaseModule`` the backbones use: the
    ``init_cfg`` attribute, ``init_weights`` and ``is_init``."""

    def __init__(self, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__()
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        return self._is_init

    def init_weights(self):
        """Without ``init_cfg`` the constructors' initialisation stays and
        the children's ``init_weights`` run; an ``init_cfg`` the module does
        not handle itself needs mmengine."""
        if self.init_cfg:
            check_stack(('mmengine', ),
                        what=f'{type(self).__name__} init_cfg '
                        f'{self.init_cfg!r}')
        for child in self.children():
            if hasattr(child, 'init_weights'):
                child.init_weights()
        self._is_init = True


class LocalDropPath(nn.Module):
    """Stochastic depth per sample: in training, each sample's residual
    branch is dropped with probability ``drop_prob`` and the kept ones are
    scaled by ``1 / (1 - drop_prob)``; identity in eval mode."""

    def __init__(self, drop_prob: float = 0.1):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        mask = torch.empty(shape, dtype=x.dtype,
                           device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class _LoggingLogger:
    """``MMLogger.get_current_instance()`` without mmengine."""

    @staticmethod
    def get_current_instance() -> logging.Logger:
        return logging.getLogger('mmtinyvim')


if importable('mmengine'):
    from mmengine.logging import MMLogger
    from mmengine.model import BaseModule
else:
    BaseModule = TorchBaseModule
    MMLogger = _LoggingLogger

if importable('mmcv'):
    from mmcv.cnn.bricks import DropPath
elif importable('timm'):
    from timm.layers import DropPath
else:
    DropPath = LocalDropPath
