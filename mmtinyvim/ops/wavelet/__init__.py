"""MobileMamba's one-level Haar transforms (WTE-Mamba) as fused kernels.

The torch reference is :mod:`mmtinyvim.models.wavelet` (today's element-wise
code), which dispatches here for the analytic Haar filters; the fused forms
also take the element-wise work around the transforms in WTE-Mamba:

* analysis: the cast of the sub-bands to the module's dtype;
* synthesis: the wavelet branch's per-band scale before it, and after it
  the crop of an odd size, the cast to the module's dtype and the add of
  the scan branch times its per-channel scale.

Backends (``backend=`` argument or the ``MMTINYVIM_WAVELET_BACKEND``
environment variable, read at every call; None means the variable, else
``auto``):

* ``triton``: :mod:`mmtinyvim.ops.wavelet.triton_kernels`, forward and
  backward kernels registered as ``torch.library`` custom ops
  (``mmtinyvim::haar_analysis``, ``mmtinyvim::haar_synthesis``); CUDA
  tensors, or CPU tensors under ``TRITON_INTERPRET=1`` (tests, debugging);
* ``reference``: the torch code, any device;
* ``auto``: ``triton`` for CUDA tensors when Triton imports, else
  ``reference``.

The callers run the reference while tracing (``torch.jit.trace``, FLOP
counting, ONNX export), whatever the backend: see :func:`use_fused`.
"""
from typing import Optional

import torch

from .. import _triton

_SWITCH = _triton.Switch('wavelet', 'MMTINYVIM_WAVELET_BACKEND',
                         'Haar-wavelet')
ENV_VAR = _SWITCH.env_var
BACKENDS = _SWITCH.backends
triton_available = _SWITCH.triton_available
check_backend = _SWITCH.check_backend
resolve_backend = _SWITCH.resolve_backend
use_fused = _SWITCH.use_fused


def _check_map(name: str, t, dims: int, shape=None):
    layout = '(B, C, 4, h, w)' if dims == 5 else '(B, C, H, W)'
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or \
            t.dim() != dims:
        raise ValueError(
            f'fused Haar transform: {name} must be a floating {layout} '
            f'tensor, got {getattr(t, "shape", type(t))} '
            f'{getattr(t, "dtype", "")}'.rstrip())
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f'fused Haar transform: {name} must have the shape '
                         f'{tuple(shape)}, got {tuple(t.shape)}')


def _check_scale(name: str, t, channels: int, device):
    if t is None:
        return
    if not isinstance(t, torch.Tensor) or t.numel() != channels or \
            t.device != device:
        raise ValueError(
            f'fused Haar transform: {name} must hold {channels} values on '
            f'{device} (a (1, {channels}, 1, 1) weight), got '
            f'{getattr(t, "shape", type(t))} on {getattr(t, "device", "")}')


def haar_analysis_fused(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 4, ceil(H/2), ceil(W/2)) sub-bands in
    ``dtype`` (computed in float32, float64 for float64 input)."""
    _check_map('x', x, 4)
    return _triton.kernels('wavelet').haar_analysis_triton(x, dtype)


def haar_synthesis_fused(bands: torch.Tensor, size,
                         band_scale: Optional[torch.Tensor] = None,
                         residual: Optional[torch.Tensor] = None,
                         residual_scale: Optional[torch.Tensor] = None,
                         dtype: Optional[torch.dtype] = None
                         ) -> torch.Tensor:
    """``residual * residual_scale + crop(synthesis(bands * band_scale))``.

    ``bands`` (B, C, 4, h, w); ``size`` the (H, W) to crop to;
    ``band_scale`` 4C values (band ``k`` of channel ``c`` at ``4c + k``),
    ``residual`` (B, C, H, W), ``residual_scale`` C values, each optional.
    ``dtype`` (None: float32, float64 for float64 bands) is the one the
    wavelet branch is rounded to before the add, as the reference's cast;
    the result has torch's promotion of it with the residual and its scale.
    """
    _check_map('bands', bands, 5)
    batch, channels = bands.shape[:2]
    height, width = (int(n) for n in size)
    _check_map('bands', bands, 5,
               (batch, channels, 4, (height + 1) // 2, (width + 1) // 2))
    if residual is not None:
        _check_map('residual', residual, 4, (batch, channels, height, width))
        if residual.device != bands.device:
            raise ValueError(f'fused Haar transform: residual is on '
                             f'{residual.device}, bands on {bands.device}')
    _check_scale('band_scale', band_scale, 4 * channels, bands.device)
    _check_scale('residual_scale', residual_scale, channels, bands.device)
    detail = dtype
    if detail is None:
        detail = torch.promote_types(bands.dtype, torch.float32)
        if band_scale is not None:
            detail = torch.promote_types(detail, band_scale.dtype)
    out = detail
    for t in (residual, residual_scale):
        if t is not None:
            out = torch.promote_types(out, t.dtype)
    return _triton.kernels('wavelet').haar_synthesis_triton(
        bands, band_scale, residual, residual_scale, size[0], size[1], out,
        detail)


__all__ = ['haar_analysis_fused', 'haar_synthesis_fused', 'use_fused',
           'BACKENDS', 'ENV_VAR', 'check_backend', 'resolve_backend',
           'triton_available']
