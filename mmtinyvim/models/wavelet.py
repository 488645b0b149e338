"""One-level 2-D Haar ('db1') wavelet transform as strided depthwise convs.

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

Both transforms run in float32, also under autocast: they mix neighbouring
pixels with +-0.5 weights and their round trip should stay exact.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ['haar_filters', 'haar_analysis', 'haar_synthesis']


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


def haar_analysis(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> sub-bands (B, C, 4, ceil(H/2), ceil(W/2)), float32.

    An odd H or W is first padded with one zero row/column at the bottom or
    right.
    """
    batch, channels, height, width = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        if height % 2 or width % 2:
            x = F.pad(x, (0, width % 2, 0, height % 2))
        bands = F.conv2d(x.float(), filters.float(), stride=2,
                         groups=channels)
    return bands.unflatten(1, (channels, 4))


def haar_synthesis(bands: torch.Tensor, filters: torch.Tensor,
                   size: Tuple[int, int]) -> torch.Tensor:
    """Sub-bands (B, C, 4, h, w) -> (B, C, H, W), float32; ``size = (H, W)``.

    ``size`` crops away the padding that :func:`haar_analysis` added.
    """
    channels = bands.shape[1]
    with torch.autocast(device_type=bands.device.type, enabled=False):
        x = F.conv_transpose2d(bands.flatten(1, 2).float(), filters.float(),
                               stride=2, groups=channels)
    return x[..., :size[0], :size[1]]
