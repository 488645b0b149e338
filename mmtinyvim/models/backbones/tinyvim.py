"""TinyViM: a frequency-decoupled hybrid of convolutions and Mamba.

TinyViM (Ma et al., 2024) is a four-stage convolutional network whose stages
are mostly ``LocalBlock``s (re-parameterisable 3x3 depthwise conv + FFN) with a
few ``TinyViMBlock``s. A TinyViM block's *Laplace mixer* splits the channels:

* the low-frequency part is average-pooled, mixed globally by a 4-direction
  selective scan (as in VMamba's SS2D) and upsampled again, with the
  Laplacian residual ``x - up(pool(x))`` added back;
* the high-frequency part goes through a local depthwise conv.

The low-frequency share grows with depth (1/4, 1/2, 1/2, 3/4: the "frequency
ramp") while the pooling shrinks (8, 4, 2, 1), so the scans run on short
sequences. Module and parameter names follow the official implementation
(xwmaxwma/TinyViM), so its checkpoints load without renaming.

Layout of ``TinyViM.network``: ``[stage1, down, stage2, down, stage3, down,
stage4]``; outputs are taken after indices 0, 2, 4, 6 (strides 4, 8, 16, 32)
and pass through their own BatchNorm ``norm{index}``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops.laplace import laplace_upsample_residual
from ...ops.scan import selective_scan
from ...ops.scan.cross import cross_merge, cross_scan
from ...registry import MODELS
from ..compat import DropPath
from ..layers import (BatchNorm2d, ConvBN, FoldsForInference,
                      check_image_batch, empty_feature_maps, fold_bn,
                      make_fused_conv, weights_dtype)
from .base import MambaBackboneBase, rename_prefixes

__all__ = ['TinyViM', 'checkpoint_filter_fn', 'convert_official_classifier',
           'to_official_classifier']

# Per stage: share of the mixer channels that take the low-frequency (scan)
# path, and the average-pool factor applied to them before the scan.
LOW_FREQUENCY_SHARES = (1 / 4, 1 / 2, 1 / 2, 3 / 4)
POOL_FACTORS = (8, 4, 2, 1)
STAGE_STRIDES = (4, 8, 16, 32)
# Input sides must be multiples of 32: the last stride, and also the stride
# times the pool factor of every mixer (4 * 8, 8 * 4, 16 * 2).
SIZE_DIVISOR = 32

# Official classifier keys that have no place in the dense backbone.
CLASSIFIER_PREFIXES = ('norm.', 'head.', 'dist_head.')
# Official classifier key prefix -> mmpretrain ImageClassifier key prefix.
CLASSIFIER_RENAMES = (('patch_embed.', 'backbone.patch_embed.'),
                      ('network.', 'backbone.network.'),
                      ('norm.', 'backbone.norm6.'),
                      ('head.', 'head.head.'),
                      ('dist_head.', 'head.dist_head.'))


class _RepDepthwise(FoldsForInference, nn.Module):
    """Depthwise ``BN(ConvBN_k(x) + Conv1x1(x) + x)``, foldable into one conv
    (and run as that conv for inference: ``layers.FoldsForInference``).

    Subclasses create ``conv`` (k x k depthwise ConvBN), ``conv1`` (1x1
    depthwise conv with bias) and ``bn`` in the official registration order.
    """

    def forward_unfolded(self, x):
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """One k x k depthwise conv equal to this block in eval mode."""
        main = self.conv.fuse()
        kh, kw = main.kernel_size
        # the 1x1 branch and the identity sit at the centre of the k x k kernel
        centre = (kw // 2, kw // 2, kh // 2, kh // 2)
        point = F.pad(self.conv1.weight + 1.0, centre)
        weight, bias = fold_bn(main.weight + point,
                               main.bias + self.conv1.bias, self.bn)
        return make_fused_conv(main, weight, bias)


class RepDWConv(_RepDepthwise):
    """RepDW: 3x3 depthwise ConvBN + 1x1 depthwise conv + identity, then BN."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, padding=1, groups=channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels)
        self.bn = BatchNorm2d(channels)


class RepAxialDWConv(_RepDepthwise):
    """Axial variant of RepDW with a 1 x k or k x 1 depthwise kernel."""

    def __init__(self, channels: int, kernel_size: Tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels)
        self.conv = ConvBN(channels, channels, kernel_size,
                           padding=(kernel_size[0] // 2, kernel_size[1] // 2),
                           groups=channels)
        self.bn = BatchNorm2d(channels)


class InceptionAxialDW(nn.Module):
    """Rep_Inception: the first half of the channels takes a k x 1 depthwise
    kernel, the second half a 1 x k kernel (k = 7)."""

    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        half = channels // 2
        self.dwconv_h = RepAxialDWConv(half, (1, kernel_size))
        self.dwconv_w = RepAxialDWConv(half, (kernel_size, 1))
        self.split_sizes = (channels - half, half)

    def forward(self, x):
        x_w, x_h = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


class FFN(nn.Module):
    """1x1 ConvBN -> GELU -> 1x1 ConvBN."""

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.fc1 = ConvBN(channels, hidden_channels)
        self.act = nn.GELU()
        self.fc2 = ConvBN(hidden_channels, channels)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LaplaceMixer(nn.Module):
    """Token mixer of a TinyViM block (the official ``SS2D``).

    ``in_proj`` -> Rep_Inception + SiLU -> channel split into a low-frequency
    part (pool, 4-direction selective scan, LayerNorm, bilinear upsample, plus
    the Laplacian residual) and a high-frequency part (RepDW) -> concat ->
    ``out_proj``.
    """

    num_directions = 4
    scan_backend: Optional[str] = None  # set by the backbone

    def __init__(self, channels: int, stage_index: int, d_state: int = 8):
        super().__init__()
        low = int(channels * LOW_FREQUENCY_SHARES[stage_index])
        self.split_sizes = (low, channels - low)
        self.pool_factor = POOL_FACTORS[stage_index]
        self.dt_rank = math.ceil(channels / 16)
        self.d_state = d_state
        k = self.num_directions

        # scan parameters, one set per direction (official names and layout)
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, self.dt_rank + 2 * d_state, low))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, low, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, low))
        self.A_logs = nn.Parameter(torch.empty(k * low, d_state))
        self.Ds = nn.Parameter(torch.empty(k * low))
        for param in (self.A_logs, self.Ds):
            param._no_weight_decay = True

        self.local_conv = RepDWConv(channels - low)
        self.out_norm = nn.LayerNorm(low)
        self.in_proj = ConvBN(channels, channels)
        self.conv2d = InceptionAxialDW(channels)
        self.act = nn.SiLU()
        self.out_proj = ConvBN(channels, channels)
        self.reset_scan_parameters()

    @torch.no_grad()
    def reset_scan_parameters(self, dt_min=1e-3, dt_max=0.1, dt_floor=1e-4):
        """Mamba's initialisation: S4D-real A, unit D, and a dt bias so that
        softplus(bias) is log-uniform in [dt_min, dt_max]."""
        low = self.split_sizes[0]
        bound = low ** -0.5  # nn.Linear's default for the stacked x_proj
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        dt_std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_projs_weight, -dt_std, dt_std)
        dt = torch.exp(
            torch.rand_like(self.dt_projs_bias) *
            (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        states = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(torch.log(states).expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    def selective_scan_2d(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-scan S6 over an (B, C, H, W) map, then ``out_norm``."""
        batch, channels, height, width = x.shape
        length = height * width
        xs = cross_scan(x, self.num_directions)               # (B, K, C, L)
        x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(
            x_dbl, (self.dt_rank, self.d_state, self.d_state), dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        ys = selective_scan(
            xs.reshape(batch, -1, length), dts.reshape(batch, -1, length),
            -torch.exp(self.A_logs.float()), Bs, Cs, D=self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True, backend=self.scan_backend)
        # view, not unflatten: ONNX export would freeze the batch size
        y = cross_merge(ys.view(batch, self.num_directions, channels, length),
                        height, width)
        y = self.out_norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return y.to(x.dtype)

    def forward(self, x):
        x = self.act(self.conv2d(self.in_proj(x)))
        low, high = torch.split(x, self.split_sizes, dim=1)
        high = self.local_conv(high)
        if self.pool_factor > 1:
            pooled = F.avg_pool2d(low, self.pool_factor)
            # bilinear_up(scan) + low - nearest_up(pooled), fused on CUDA
            low = laplace_upsample_residual(self.selective_scan_2d(pooled),
                                            low, self.pool_factor,
                                            pooled=pooled)
        else:
            low = self.selective_scan_2d(low)
        return self.out_proj(torch.cat((low, high), dim=1))


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0 else nn.Identity()


class TinyViMBlock(nn.Module):
    """x + LaplaceMixer(x), then x + FFN(x); no norm, no layer scale."""

    def __init__(self, channels: int, stage_index: int, mlp_ratio: int = 4,
                 drop_path: float = 0.0):
        super().__init__()
        self.op = LaplaceMixer(channels, stage_index)
        self.mlp = FFN(channels, channels * mlp_ratio)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.op(x))
        return x + self.drop_path(self.mlp(x))


class LocalBlock(nn.Module):
    """x + layer_scale * FFN(RepDW(x)); the layer scale starts at 1."""

    def __init__(self, channels: int, mlp_ratio: int = 4,
                 drop_path: float = 0.0):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.ones(channels, 1, 1))
        self.dwconv = RepDWConv(channels)
        self.mlp = FFN(channels, channels * mlp_ratio)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x):
        return x + self.drop_path(self.layer_scale * self.mlp(self.dwconv(x)))


class DownsampleEmbedding(nn.Module):
    """3x3 stride-2 ConvBN between stages (official ``Embedding``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = ConvBN(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.proj(x)


def mixer_block_indices(stage_index: int, depth: int) -> Tuple[int, ...]:
    """Which blocks of a stage are TinyViM blocks: the last one, and in the
    third stage also the middle one."""
    indices = {depth - 1}
    if stage_index == 2:
        indices.add(depth // 2)
    return tuple(sorted(indices))


@MODELS.register_module()
class TinyViM(MambaBackboneBase):
    """TinyViM backbone (`TinyViM: Frequency Decoupling for Tiny Hybrid Vision
    Mamba <https://arxiv.org/abs/2411.17473>`_).

    Args:
        arch (str | dict): 's', 'b', 'l' (case-insensitive) or a dict with
            ``widths`` and ``depths`` (four positive ints each).
        out_indices (int | Sequence[int]): stages (0-3) whose features are
            returned, each after its own BatchNorm ``norm{2 * index}``;
            negative indices count from the end; sorted. ``(3,)`` gives the
            classifier form, where ``norm6`` is the official final ``norm``.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            the first k stages (with the downsamplers between them). The
            output norms stay trainable.
        norm_eval (bool): keep every BatchNorm in eval mode during training.
        drop_path_rate (float): stochastic depth rate, increasing linearly
            over all blocks up to this value (the official models use 0).
        scan_backend (str, optional): selective-scan backend, see
            :mod:`mmtinyvim.ops.scan`; None reads the
            ``MMTINYVIM_SCAN_BACKEND`` environment variable (at every scan)
            or picks automatically.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads an official (classification or
            dense) or mmtinyvim checkpoint strictly, see
            :func:`checkpoint_filter_fn`; other configs follow mmengine.

    Any H, W >= 32 is accepted: the input is zero-padded at the bottom/right
    to a multiple of 32 and each output is cropped to
    ``ceil(H / stride) x ceil(W / stride)``.

    :meth:`switch_to_deploy` folds every Conv+BN pair and re-parameterisable
    branch into single convs; the output norms, LayerNorms, layer scales and
    scan parameters stay.
    """

    arch_zoo = {
        's': dict(widths=[48, 64, 168, 224], depths=[3, 3, 9, 6]),
        'b': dict(widths=[48, 96, 192, 384], depths=[4, 3, 10, 5]),
        'l': dict(widths=[64, 128, 384, 512], depths=[4, 4, 12, 6]),
    }
    arch_keys = ('widths', 'depths')
    num_stages = 4
    num_outputs = 4
    scan_mixer_type = LaplaceMixer
    mlp_ratio = 4

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.0,
                 scan_backend: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(arch, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, scan_backend, init_cfg)
        arch = self.arch_settings
        widths, depths = arch['widths'], arch['depths']
        self.widths, self.depths = tuple(widths), tuple(depths)

        self.patch_embed = nn.Sequential(
            ConvBN(3, widths[0] // 2, 3, stride=2, padding=1), nn.GELU(),
            ConvBN(widths[0] // 2, widths[0], 3, stride=2, padding=1),
            nn.GELU())

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        network = []
        for i, (width, depth) in enumerate(zip(widths, depths)):
            if i > 0:
                network.append(DownsampleEmbedding(widths[i - 1], width))
            stage_rates = rates[sum(depths[:i]):sum(depths[:i + 1])]
            mixers = mixer_block_indices(i, depth)
            network.append(nn.Sequential(*[
                TinyViMBlock(width, i, self.mlp_ratio, rate) if j in mixers
                else
                LocalBlock(width, self.mlp_ratio, rate)
                for j, rate in enumerate(stage_rates)
            ]))
        self.network = nn.ModuleList(network)

        for i in self.out_indices:
            self.add_module(f'norm{2 * i}', BatchNorm2d(widths[i]))
        self.out_channels = tuple(widths[i] for i in self.out_indices)
        self.out_strides = tuple(STAGE_STRIDES[i] for i in self.out_indices)

        self.apply(_official_init)
        self._finish_init()

    @classmethod
    def _check_custom_arch(cls, arch: dict) -> Dict[str, list]:
        for key in cls.arch_keys:
            if not cls._is_per_stage(
                    arch[key], lambda v: isinstance(v, int) and v > 0):
                raise ValueError(f'arch[{key!r}] must be {cls.num_stages} '
                                 f'positive ints, got {arch[key]!r}')
        if any(w % 4 for w in arch['widths']):
            raise ValueError('arch["widths"] must be multiples of 4 (the '
                             'mixer splits channels in quarters and halves), '
                             f'got {arch["widths"]}')
        return {k: list(arch[k]) for k in cls.arch_keys}

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = check_image_batch(x, name='TinyViM', dtype=weights_dtype(self))
        if not len(x):
            return empty_feature_maps(self, x, self.out_channels,
                                      self.out_strides)
        height, width = x.shape[2:]
        pad_h, pad_w = -height % SIZE_DIVISOR, -width % SIZE_DIVISOR
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)
        outs = []
        for stage in range(self.num_stages):
            if stage > 0:
                x = self.network[2 * stage - 1](x)
            x = self.network[2 * stage](x)
            if stage in self.out_indices:
                out = getattr(self, f'norm{2 * stage}')(x)
                if pad_h or pad_w:
                    stride = STAGE_STRIDES[stage]
                    # ceil division written without negative floor
                    # division, which ONNX rounds towards zero
                    out = out[..., :(height + stride - 1) // stride,
                              :(width + stride - 1) // stride]
                outs.append(out)
            if stage == self.out_indices[-1]:
                break
        return tuple(outs)

    def _stem_and_stages(self) -> List[nn.Module]:
        # network = [stage1, down, stage2, down, stage3, down, stage4]
        return [self.patch_embed] + [
            self.network[max(2 * i - 1, 0):2 * i + 1]
            for i in range(self.num_stages)]

    def _filter_checkpoint(self, state_dict):
        return checkpoint_filter_fn(state_dict, self)

    def _allowed_missing_keys(self, state_dict):
        return absent_output_norm_keys(state_dict, self)


@torch.no_grad()
def _official_init(module: nn.Module):
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _output_norm_names(model: TinyViM) -> List[str]:
    return [f'norm{2 * i}' for i in model.out_indices]


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor],
                         model: TinyViM) -> Dict[str, torch.Tensor]:
    """Map an official TinyViM checkpoint to ``model``'s keys.

    Drops the official classifier (``norm.*``, ``head.*``, ``dist_head.*``)
    and the dense output norms of stages ``model`` does not output. All other
    keys pass unchanged (official and mmtinyvim names are the same); loading
    stays strict, see :func:`absent_output_norm_keys` for the one exception.
    """
    all_norms = {f'norm{2 * i}' for i in range(TinyViM.num_stages)}
    unused_norms = all_norms - set(_output_norm_names(model))
    return {k: v for k, v in state_dict.items()
            if not k.startswith(CLASSIFIER_PREFIXES)
            and k.split('.')[0] not in unused_norms}


def absent_output_norm_keys(state_dict: Dict[str, torch.Tensor],
                            model: TinyViM) -> List[str]:
    """Keys of the output norms ``model`` has and ``state_dict`` lacks
    entirely: a classification checkpoint cannot have them, so they may keep
    their initialisation. A partly present norm is not excused."""
    own = model.state_dict()
    absent = []
    for name in _output_norm_names(model):
        keys = [k for k in own if k.startswith(name + '.')]
        if not any(k in state_dict for k in keys):
            absent += keys
    return absent


def convert_official_classifier(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official classification state dict -> keys of the mmpretrain
    ``ImageClassifier(backbone=TinyViM(out_indices=(3,)), neck=GAP,
    head=TinyViMClsHead)``."""
    return rename_prefixes(
        state_dict, CLASSIFIER_RENAMES,
        'Not an official TinyViM classification state dict')


def to_official_classifier(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`convert_official_classifier`."""
    return rename_prefixes(
        state_dict, [(new, old) for old, new in CLASSIFIER_RENAMES],
        'Not a TinyViM ImageClassifier state dict (backbone '
        'out_indices=(3,), TinyViMClsHead)')
