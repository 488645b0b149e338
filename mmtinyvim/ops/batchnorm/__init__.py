"""BatchNorm2d in training mode (batch statistics, running-stat update) as
fused Triton kernels.

cuDNN's NCHW training kernels for batch norm move the map several times
more often than the normalisation needs; the Triton op reads ``x`` twice
and writes ``y`` once forward (two launches), reads ``x`` and ``dy`` twice
and writes ``dx`` once backward (two launches). See
:mod:`mmtinyvim.ops.batchnorm.triton_kernels` for the split of the
reduction and its numerics (shifted data, per-block mean and M2 merged with
Chan's formula, float32 accumulation, no atomics).

Backends (``backend=`` argument or the ``MMTINYVIM_BATCHNORM_BACKEND``
environment variable, read at every call; None means the variable, else
``auto``):

* ``triton``: the kernels, registered as ``torch.library`` custom ops
  (``mmtinyvim::batch_norm_train_fwd``, which mutates the running
  statistics, and ``mmtinyvim::batch_norm_train_bwd``): one node each under
  ``torch.compile``, captured by CUDA graphs; CUDA tensors, or CPU tensors
  under ``TRITON_INTERPRET=1`` (tests, debugging);
* ``reference``: ``F.batch_norm(..., training=True)``, any device;
* ``auto``: ``triton`` for CUDA tensors when Triton imports, else
  ``reference``.

While tracing (``torch.jit.trace``, FLOP counting, ONNX export,
``torch.export``) the reference runs whatever the backend.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .. import _triton

ENV_VAR = 'MMTINYVIM_BATCHNORM_BACKEND'
BACKENDS = _triton.BACKENDS
_WHAT = 'BatchNorm'


def triton_available(device: torch.device) -> bool:
    """True when the Triton kernels can run on tensors of ``device``."""
    return _triton.available('batchnorm', device)


def check_backend(name: Optional[str]) -> str:
    """Validate a backend name (None means the environment default)."""
    return _triton.check_backend(name, ENV_VAR, _WHAT)


def resolve_backend(name: Optional[str], device: torch.device) -> str:
    """The concrete backend that ``name`` means for tensors on ``device``."""
    return _triton.resolve_backend('batchnorm', name, ENV_VAR, _WHAT, device)


def use_fused(name: Optional[str], device: torch.device) -> bool:
    """Whether a batch norm on ``device`` runs the kernels: never while
    tracing or exporting, else as the backend resolves."""
    if _triton.tracing():
        return False
    return resolve_backend(name, device) == 'triton'


# Under ``auto`` the kernels take a map only when each channel holds at least
# this many values (N * H * W). Each call pays a host cost (four launches
# through the custom-op dispatcher) that cuDNN's single NCHW kernels do not;
# timed alone on an H100 (docs/benchmark.md, "BatchNorm in training"), the
# op beats cuDNN only on large planes (the stems at 112x112 / 128x128) and
# loses on every smaller one. ``triton`` (argument or environment) forces the
# kernels everywhere.
AUTO_MIN_VALUES = 1 << 19


def use_fused_for(x: torch.Tensor, name: Optional[str] = None) -> bool:
    """Whether a training batch norm of ``x`` runs the kernels: as
    :func:`use_fused`, and under ``auto`` only for channels of at least
    :data:`AUTO_MIN_VALUES` values."""
    if not use_fused(name, x.device):
        return False
    if check_backend(name) != 'auto':
        return True
    return x.shape[0] * x.shape[2] * x.shape[3] >= AUTO_MIN_VALUES


def rows_contiguous(x: torch.Tensor) -> bool:
    """True when each (sample, channel) plane of the 4-D ``x`` is one
    contiguous run (NCHW-contiguous maps and their channel-split views):
    the layout the kernels load at full speed. Channels-last maps are
    correct but take strided loads."""
    height, width = x.shape[2:]
    if height * width == 1:
        return True
    stride_h, stride_w = x.stride()[2:]
    if width == 1:
        return stride_h == 1
    return stride_w == 1 and (height == 1 or stride_h == width)


def batch_norm_train_reference(x, weight, bias, running_mean, running_var,
                               momentum, eps):
    """torch's training-mode batch norm (the test oracle)."""
    return F.batch_norm(x, running_mean, running_var, weight, bias, True,
                        momentum, eps)


def _check_inputs(x, weight, bias, running_mean, running_var, eps):
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or \
            not x.is_floating_point():
        raise ValueError(
            f'batch_norm_train: x must be a floating (N, C, H, W) tensor, '
            f'got {getattr(x, "shape", type(x))} '
            f'{getattr(x, "dtype", "")}'.rstrip())
    channels = x.shape[1]
    for name, t in (('weight', weight), ('bias', bias),
                    ('running_mean', running_mean),
                    ('running_var', running_var)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or \
                t.shape[0] != channels or not t.is_floating_point() or \
                t.device != x.device:
            raise ValueError(
                f'batch_norm_train: {name} must be a floating tensor of '
                f'{channels} values (the channels of x) on {x.device}, got '
                f'{getattr(t, "shape", type(t))} on '
                f'{getattr(t, "device", "")}')
    if (running_mean is None) != (running_var is None):
        raise ValueError('batch_norm_train: give both running_mean and '
                         'running_var, or neither')
    # torch's message, for the same case (batch 1 of 1x1 maps)
    if x.shape[0] * x.shape[2] * x.shape[3] == 1:
        raise ValueError('Expected more than 1 value per channel when '
                         f'training, got input size {x.size()}')
    if not eps > 0:
        raise ValueError('batch_norm eps must be positive during training, '
                         f'but got {eps}')


def batch_norm_train(x: torch.Tensor, weight: Optional[torch.Tensor],
                     bias: Optional[torch.Tensor],
                     running_mean: Optional[torch.Tensor],
                     running_var: Optional[torch.Tensor],
                     momentum: float = 0.1, eps: float = 1e-5,
                     backend: Optional[str] = None) -> torch.Tensor:
    """``F.batch_norm(x, running_mean, running_var, weight, bias,
    training=True, momentum, eps)`` for a (N, C, H, W) map.

    Normalises with the batch statistics (biased variance) and, when given,
    updates ``running_mean`` / ``running_var`` in place as torch does
    (``(1 - momentum) * running + momentum * batch``, unbiased variance for
    ``running_var``). ``x`` float32/float16/bfloat16 (float64 too), NCHW or
    channels-last; ``weight`` / ``bias`` / statistics float32 as under
    autocast (None: no affine). Returns ``y`` in ``x``'s dtype and memory
    format; gradients for ``x``, ``weight`` and ``bias``.
    """
    if _triton.tracing():
        return batch_norm_train_reference(x, weight, bias, running_mean,
                                          running_var, momentum, eps)
    _check_inputs(x, weight, bias, running_mean, running_var, eps)
    name = resolve_backend(backend, x.device)
    if name == 'reference' or x.numel() == 0:
        return batch_norm_train_reference(x, weight, bias, running_mean,
                                          running_var, momentum, eps)
    if momentum is None:
        raise ValueError('batch_norm_train: momentum None (a cumulative '
                         'moving average) is not supported by the triton '
                         'backend; give a float or use "reference"')
    return _triton.kernels('batchnorm').batch_norm_train_triton(
        x, weight, bias, running_mean, running_var, momentum, eps)


__all__ = ['batch_norm_train', 'batch_norm_train_reference', 'use_fused',
           'use_fused_for', 'AUTO_MIN_VALUES',
           'rows_contiguous',
           'BACKENDS', 'ENV_VAR', 'check_backend', 'resolve_backend',
           'triton_available']
