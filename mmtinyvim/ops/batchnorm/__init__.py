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

* ``triton``: the kernels (``mmtinyvim::batch_norm_train_fwd``, whose
  outputs include the updated running statistics, and
  ``mmtinyvim::batch_norm_train_bwd`` as ``torch.library`` custom ops:
  one node each under ``torch.compile``; eagerly the same kernels through an
  ``autograd.Function``); CUDA tensors, or CPU tensors under
  ``TRITON_INTERPRET=1`` (tests, debugging);
* ``native``: torch's own CUDA batch-norm kernels, not cuDNN's
  (``torch.batch_norm(..., cudnn_enabled=False)``), any device;
* ``reference``: ``F.batch_norm(..., training=True)`` (cuDNN on CUDA), any
  device;
* ``auto``: for a map (:func:`train_backend_for`): ``native`` for NCHW
  maps on CUDA, ``reference`` for channels-last ones and off CUDA; never the
  kernels, which only ``triton`` selects: in a whole eager training step
  they left the GPU idle for tens of ms per step (docs/benchmark.md,
  "BatchNorm in a whole eager step"; cause not found yet), although alone
  they are faster. Without a map (:func:`resolve_backend`) ``auto`` is
  ``triton`` for CUDA tensors when Triton imports, else ``reference``.

While tracing (``torch.jit.trace``, FLOP counting, ONNX export,
``torch.export``) the reference runs whatever the backend.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .. import _triton

_SWITCH = _triton.Switch('batchnorm', 'MMTINYVIM_BATCHNORM_BACKEND',
                         'BatchNorm', ('auto', 'triton', 'native',
                                       'reference'))
ENV_VAR = _SWITCH.env_var
BACKENDS = _SWITCH.backends
triton_available = _SWITCH.triton_available
check_backend = _SWITCH.check_backend


def resolve_backend(name: Optional[str], device: torch.device) -> str:
    """The concrete backend that ``name`` means for tensors on ``device``
    (``auto``: ``triton`` for CUDA tensors when Triton imports, else
    ``reference``; :func:`train_backend_for` refines it by shape)."""
    name = check_backend(name)
    if name == 'native':
        return name
    return _SWITCH.resolve_backend(name, device)


def train_backend_for(x: torch.Tensor, name: Optional[str] = None) -> str:
    """The backend a training-mode :class:`~mmtinyvim.models.layers.
    BatchNorm2d` runs for the 4-D map ``x``: ``triton``, ``native`` or
    ``reference``.

    ``reference`` while tracing or exporting, for channels-last maps
    (cuDNN's NHWC kernels; the Triton kernels load their planes strided)
    and, under ``auto``, off CUDA; ``auto`` on CUDA NCHW maps: ``native``
    (see the module docstring for why not the kernels).
    """
    if _triton.tracing():
        return 'reference'
    requested = check_backend(name)
    if requested != 'auto':
        concrete = resolve_backend(requested, x.device)
        return ('reference' if concrete == 'triton' and
                not rows_contiguous(x) else concrete)
    if x.device.type != 'cuda' or not rows_contiguous(x):
        return 'reference'
    return 'native'


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


def batch_norm_train_native(x, weight, bias, running_mean, running_var,
                            momentum, eps):
    """Training-mode batch norm through ``torch.batch_norm`` with
    ``cudnn_enabled=False``. torch 2.11 no longer honours that flag (its
    CUDA kernels are cuDNN's, the same as ``F.batch_norm``'s: kernel
    profile in docs/benchmark.md); what this saves is ``F.batch_norm``'s
    Python-side checks, host time per call."""
    return torch.batch_norm(x, weight, bias, running_mean, running_var, True,
                            momentum, eps, False)


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
        raise ValueError(f'batch_norm_train: momentum None (a cumulative '
                         f'moving average) is not supported by the {name} '
                         'backend; give a float or use "reference"')
    if name == 'native':
        return batch_norm_train_native(x, weight, bias, running_mean,
                                       running_var, momentum, eps)
    return _triton.kernels('batchnorm').batch_norm_train_triton(
        x, weight, bias, running_mean, running_var, momentum, eps)


__all__ = ['batch_norm_train', 'batch_norm_train_reference',
           'batch_norm_train_native', 'train_backend_for',
           'rows_contiguous',
           'BACKENDS', 'ENV_VAR', 'check_backend', 'resolve_backend',
           'triton_available']
