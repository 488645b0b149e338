"""The cross-scan of both families: a feature map as K token sequences, and
the K scan outputs merged back into a map.

Directions, in channel-block order of the scan input (see
``docs/recipes.md#scan-directions``):

* K = 2 (MobileMamba's ``SS2D``): row-major, then row-major reversed;
* K = 4 (TinyViM's ``SS2D``, as VMamba): row-major, column-major, then both
  reversed.
"""
import torch

DIRECTIONS = (2, 4)


def _check_directions(directions: int) -> None:
    if directions not in DIRECTIONS:
        raise ValueError(f'Unknown number of scan directions {directions!r}; '
                         f'valid: {", ".join(map(str, DIRECTIONS))}')


def cross_scan(x: torch.Tensor, directions: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, K, C, H*W), the K = ``directions`` sequences."""
    _check_directions(directions)
    forward = x.flatten(2)[:, None]
    if directions == 4:
        forward = torch.cat((forward, x.transpose(2, 3).flatten(2)[:, None]),
                            dim=1)
    return torch.cat((forward, forward.flip(-1)), dim=1)


def cross_merge(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse layout of :func:`cross_scan`, summing the K directions:
    (B, K, C, H*W) -> (B, C, H, W)."""
    batch, directions, channels, _ = ys.shape
    _check_directions(directions)
    half = directions // 2
    ys = ys[:, :half] + ys[:, half:].flip(-1)
    y = ys[:, 0].view(batch, channels, height, width)
    if directions == 4:
        y = y + ys[:, 1].view(batch, channels, width, height).transpose(2, 3)
    return y
