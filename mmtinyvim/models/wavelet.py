"""One-level 2-D Haar ('db1') wavelet transform.

The filters are built analytically, so PyWavelets is not needed. With
``s = 1/sqrt(2)`` the 1-D low-pass is ``[s, s]`` and the high-pass is
``[s, -s]`` (PyWavelets' ``dec_hi = [-s, s]`` reversed, because ``conv2d``
correlates instead of convolving). Each channel gives four 2x2 sub-band
filters, ``outer(filter along H, filter along W)``, in the order

    0: low  H, low  W   (LL, the approximation)
    1: high H, low  W
    2: low  H, high W
    3: high H, high W

which is the order and orientation of MobileMamba's ``create_wavelet_filter``.
The Haar basis is orthonormal, so the synthesis filters equal the analysis
filters and ``haar_synthesis(haar_analysis(x))`` reproduces ``x``.

Two implementations of the same transform:

* ``filters=None``: the analytic Haar filters (every 2-D weight is +-1/2),
  written as sums and differences of the four pixels of each 2x2 block.
  Element-wise only, so ``torch.compile`` fuses it with its neighbours, and
  it avoids cuDNN's grouped ``conv_transpose2d``, which is slow.
* ``filters`` given: arbitrary per-channel 2x2 filters (e.g. the random ones
  of the golden parity weights) as a depthwise stride-2 ``conv2d`` and the
  matching grouped ``conv_transpose2d``.

With ``filters=None`` and CUDA tensors the transforms run as fused Triton
kernels (:mod:`mmtinyvim.ops.wavelet`, switch ``MMTINYVIM_WAVELET_BACKEND``
or ``backend=``), which also take WTE-Mamba's element-wise work around them
(the sub-bands' cast; the per-band scale, the add of the scaled scan branch
and the casts of the synthesis): the keyword arguments below, which the
torch code applies as separate ops, in WTE-Mamba's order.

Both run in float32, also under autocast: they mix neighbouring pixels and
their round trip should stay exact, and a half-precision sum of four large
activations could overflow. The cast is element-wise too, so under
``torch.compile`` it is fused into the transform and costs no extra pass.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..ops.wavelet import (haar_analysis_fused, haar_synthesis_fused,
                           use_fused)

__all__ = ['haar_filters', 'is_haar', 'haar_analysis', 'haar_synthesis']


def haar_filters(channels: int,
                 dtype: torch.dtype = torch.float32
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis filters for ``channels`` channels.

    Returns two tensors of shape ``(4 * channels, 1, 2, 2)``: the weights of a
    depthwise stride-2 ``conv2d`` (analysis) and of the matching grouped
    ``conv_transpose2d`` (synthesis). Output ``4 * c + k`` is sub-band ``k``
    of channel ``c``.
    """
    if channels < 1:
        raise ValueError(f'haar_filters needs channels >= 1, got {channels}')
    s = 1.0 / math.sqrt(2.0)
    low = torch.tensor([s, s], dtype=torch.float64)
    high = torch.tensor([s, -s], dtype=torch.float64)
    bands = torch.stack([torch.outer(along_h, along_w)
                         for along_h, along_w in ((low, low), (high, low),
                                                  (low, high), (high, high))])
    analysis = bands[:, None].repeat(channels, 1, 1, 1).to(dtype)
    return analysis, analysis.clone()


@torch.no_grad()
def is_haar(filters: torch.Tensor, atol: float = 1e-6) -> bool:
    """True when ``filters`` (4C, 1, 2, 2) are the analytic Haar filters of
    :func:`haar_filters` (to ``atol``: PyWavelets' float32 products may
    differ from +-1/2 in the last bit). Reads the values (a device sync):
    call it when filters are set or loaded, not per forward pass."""
    if filters.is_meta or filters.dim() != 4 or filters.shape[0] % 4 or \
            tuple(filters.shape[1:]) != (1, 2, 2):
        return False
    reference, _ = haar_filters(filters.shape[0] // 4)
    return bool(torch.allclose(filters.detach().float().cpu(), reference,
                               rtol=0., atol=atol))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 inputs."""
    return torch.promote_types(x.dtype, torch.float32)


def haar_analysis(x: torch.Tensor,
                  filters: Optional[torch.Tensor] = None,
                  dtype: Optional[torch.dtype] = None,
                  backend: Optional[str] = None) -> torch.Tensor:
    """(B, C, H, W) -> sub-bands (B, C, 4, ceil(H/2), ceil(W/2)), float32
    (float64 for a float64 input), then cast to ``dtype`` if given.

    An odd H or W is first padded with one zero row/column at the bottom or
    right. ``filters=None`` applies the analytic Haar filters element-wise
    (or fused, see the module docstring; ``backend`` as
    :mod:`mmtinyvim.ops.wavelet`'s); a (4C, 1, 2, 2) tensor is applied as a
    depthwise stride-2 convolution.
    """
    if filters is None and use_fused(backend, x.device):
        return haar_analysis_fused(x, dtype or _compute_dtype(x))
    bands = _haar_analysis(x, filters)
    return bands if dtype is None else bands.to(dtype)


def _haar_analysis(x, filters):
    batch, channels, height, width = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        if height % 2 or width % 2:
            x = F.pad(x, (0, width % 2, 0, height % 2))
        x = x.to(_compute_dtype(x))
        if filters is not None:
            bands = F.conv2d(x, filters.to(x.dtype), stride=2,
                             groups=channels)
            return bands.unflatten(1, (channels, 4))
        # (B, C, h, 2, w, 2): the 2x2 block of output pixel (h, w)
        blocks = x.unflatten(3, (-1, 2)).unflatten(2, (-1, 2))
        top, bottom = blocks[:, :, :, 0], blocks[:, :, :, 1]
        # along H: low = top + bottom, high = top - bottom: (B,C,2,h,w,2)
        along_h = torch.stack((top + bottom, top - bottom), dim=2)
        left, right = along_h[..., 0], along_h[..., 1]
        # along W -> (B, C, 2 [W band], 2 [H band], h, w); band k = 2*w + h
        bands = torch.stack((left + right, left - right), dim=2)
        return bands.flatten(2, 3).mul_(0.5)


def haar_synthesis(bands: torch.Tensor, filters: Optional[torch.Tensor],
                   size: Tuple[int, int],
                   band_scale: Optional[torch.Tensor] = None,
                   residual: Optional[torch.Tensor] = None,
                   residual_scale: Optional[torch.Tensor] = None,
                   dtype: Optional[torch.dtype] = None,
                   backend: Optional[str] = None) -> torch.Tensor:
    """Sub-bands (B, C, 4, h, w) -> (B, C, H, W), float32; ``size = (H, W)``.

    ``size`` crops away the padding that :func:`haar_analysis` added.
    ``filters=None``: inverse of the analytic Haar analysis (element-wise, or
    fused: see the module docstring); a (4C, 1, 2, 2) tensor is applied as a
    grouped transposed convolution.

    WTE-Mamba's work around it, each optional: the bands are first
    multiplied by ``band_scale`` (a (1, 4C, 1, 1) weight: band ``k`` of
    channel ``c`` is ``4c + k``), the result is cast to ``dtype`` and
    ``residual`` (B, C, H, W), times ``residual_scale`` (a (1, C, 1, 1)
    weight), is added to it.
    """
    if filters is None and use_fused(backend, bands.device):
        return haar_synthesis_fused(bands, size, band_scale, residual,
                                    residual_scale, dtype)
    if band_scale is not None:
        bands = (bands.flatten(1, 2) * band_scale).unflatten(
            1, bands.shape[1:3])
    detail = _haar_synthesis(bands, filters, size)
    if dtype is not None:
        detail = detail.to(dtype)
    if residual is None:
        return detail
    if residual_scale is not None:
        residual = residual * residual_scale
    return residual + detail


def _haar_synthesis(bands, filters, size):
    channels = bands.shape[1]
    with torch.autocast(device_type=bands.device.type, enabled=False):
        bands = bands.to(_compute_dtype(bands))
        if filters is not None:
            x = F.conv_transpose2d(bands.flatten(1, 2),
                                   filters.to(bands.dtype), stride=2,
                                   groups=channels)
            return x[..., :size[0], :size[1]]
        # (B, C, 2 [W band], 2 [H band], h, w), see haar_analysis
        split = bands.unflatten(2, (2, 2))
        low_w, high_w = split[:, :, 0], split[:, :, 1]
        # undo W: (B, C, 2 [H band], h, w, 2 [column in the block])
        along_h = torch.stack((low_w + high_w, low_w - high_w), dim=-1)
        low_h, high_h = along_h[:, :, 0], along_h[:, :, 1]
        # undo H: (B, C, h, 2 [row in the block], w, 2)
        blocks = torch.stack((low_h + high_h, low_h - high_h), dim=3)
        x = blocks.mul_(0.5).flatten(4, 5).flatten(2, 3)
    return x[..., :size[0], :size[1]]
