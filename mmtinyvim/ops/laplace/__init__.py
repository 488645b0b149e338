"""The tail of TinyViM's Laplace mixer, after the scan on the pooled grid::

    out = bilinear_up(y, p) + low - nearest_up(pooled, p)
    pooled = avg_pool2d(low, p),  y = the scan's output on the pooled grid

Unfused (:func:`laplace_upsample_residual_reference`, the mixer's torch
code) the nearest upsampling, the subtraction, the bilinear upsampling and
the addition each read and write full-resolution tensors; fused, ``low`` is
read once and ``out`` written once (``pooled`` and ``y`` are p^2 times
smaller). ``pooled`` is taken from the caller, who has it already as the
scan's input, instead of pooling ``low`` again; so the backward pass only
reads the incoming gradient: d low is that gradient itself, d y and
d pooled are pooled-grid sized.

Backends (``backend=`` argument or the ``MMTINYVIM_LAPLACE_BACKEND``
environment variable, read at every call; None means the variable, else
``auto``):

* ``triton``: :mod:`mmtinyvim.ops.laplace.triton_kernels`, forward and
  backward kernels registered as ``torch.library`` custom ops (one node under
  ``torch.compile``, captured by CUDA graphs); CUDA tensors, or CPU tensors
  under ``TRITON_INTERPRET=1`` (for tests and debugging);
* ``reference``: the torch composition, any device;
* ``auto``: ``triton`` for CUDA tensors when Triton imports, else
  ``reference``.

While tracing (``torch.jit.trace``, FLOP counting, ONNX export,
``torch.export``) the reference composition runs whatever the backend:
exporters and FLOP counters see the same standard ops as before.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .. import _triton

_SWITCH = _triton.Switch('laplace', 'MMTINYVIM_LAPLACE_BACKEND',
                         'Laplace-residual')
ENV_VAR = _SWITCH.env_var
BACKENDS = _SWITCH.backends
triton_available = _SWITCH.triton_available
check_backend = _SWITCH.check_backend
resolve_backend = _SWITCH.resolve_backend


def laplace_upsample_residual_reference(y: torch.Tensor, low: torch.Tensor,
                                        p: int,
                                        pooled: Optional[torch.Tensor] = None
                                        ) -> torch.Tensor:
    """The torch composition (TinyViM's own code; the test oracle)."""
    if pooled is None:
        pooled = F.avg_pool2d(low, p)
    laplacian = low - F.interpolate(pooled, size=low.shape[2:],
                                    mode='nearest')
    return F.interpolate(y, scale_factor=p, mode='bilinear') + laplacian


def _check_inputs(y, low, p, pooled):
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f'laplace_upsample_residual: p must be a positive '
                         f'int (the pooling factor), got {p!r}')
    for name, t in (('low', low), ('y', y), ('pooled', pooled)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or \
                not t.is_floating_point():
            raise ValueError(
                f'laplace_upsample_residual: {name} must be a floating '
                f'(batch, channels, height, width) tensor, got '
                f'{getattr(t, "shape", type(t))} '
                f'{getattr(t, "dtype", "")}'.rstrip())
        if t.device != low.device:
            raise ValueError(f'laplace_upsample_residual: {name} is on '
                             f'{t.device}, low on {low.device}')
    batch, channels, height, width = low.shape
    if height % p or width % p:
        raise ValueError(f'laplace_upsample_residual: low\'s size '
                         f'{height}x{width} is not a multiple of p={p}')
    grid = (batch, channels, height // p, width // p)
    for name, t in (('y', y), ('pooled', pooled)):
        if t is not None and tuple(t.shape) != grid:
            raise ValueError(
                f'laplace_upsample_residual: {name} must have the pooled '
                f'shape {grid} of low {tuple(low.shape)} with p={p}, got '
                f'{tuple(t.shape)}')


def laplace_upsample_residual(y: torch.Tensor, low: torch.Tensor, p: int,
                              pooled: Optional[torch.Tensor] = None,
                              backend: Optional[str] = None) -> torch.Tensor:
    """``bilinear_up(y, p) + low - nearest_up(avg_pool2d(low, p))``.

    Args:
        y: (B, C, H / p, W / p), the scan's output on the pooled grid.
        low: (B, C, H, W), H and W multiples of ``p``.
        p: the pooling factor (bilinear ``scale_factor``, align_corners
            False, as ``F.interpolate`` computes it).
        pooled: ``avg_pool2d(low, p)`` when the caller has it (the scan's
            input); pooled here otherwise.
        backend: see the module docstring.

    Returns the dtype torch's composition gives (the promotion of the
    inputs'); the Triton path accumulates in float32.
    """
    if _triton.tracing():
        # traced sizes are tensors: the composition checks them itself
        return laplace_upsample_residual_reference(y, low, p, pooled)
    _check_inputs(y, low, p, pooled)
    name = resolve_backend(backend, low.device)
    if name == 'reference':
        return laplace_upsample_residual_reference(y, low, p, pooled)
    if pooled is None:
        pooled = F.avg_pool2d(low, p)
    return _triton.kernels('laplace').laplace_upsample_residual_triton(
        y, low, pooled, p)


__all__ = ['laplace_upsample_residual', 'laplace_upsample_residual_reference',
           'BACKENDS', 'ENV_VAR', 'check_backend', 'resolve_backend',
           'triton_available']
