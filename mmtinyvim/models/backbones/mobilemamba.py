"""MobileMamba: a lightweight multi-receptive-field state-space network.

MobileMamba (He et al., 2025) is a three-stage network on a stride-16 stem:

    patch_embed  4 x (3x3 stride-2 Conv-BN), ReLU between     stride 16, C1
    blocks1      MobileMambaBlock x d1                        stride 16, C1
    blocks2      transition C1 -> C2, MobileMambaBlock x d2   stride 32, C2
    blocks3      transition C2 -> C3, MobileMambaBlock x d3   stride 64, C3

A ``MobileMambaBlock`` is ``x + DropPath(ffn1(dw1(mixer(ffn0(dw0(x))))))``
with every inner op residual. Its mixer, MRFFI (multi-receptive field feature
interaction), splits the channels three ways:

* global: WTE-Mamba, a bidirectional selective scan (SS2D, d_state 1) plus a
  Haar-wavelet branch whose depthwise conv works on the four sub-bands, i.e.
  with a doubled receptive field and separate high frequencies;
* local: a k x k depthwise conv (MK-DeConv: k = 7, 5, 3 per stage);
* identity: passed through, then everything is re-mixed by ReLU + 1x1 Conv-BN.

Module and parameter names follow the official implementation
(lewandofskee/MobileMamba), so its checkpoints load without renaming; the
dense form is the classification network minus ``head``.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops.scan import selective_scan
from ...ops.scan.cross import cross_merge, cross_scan
from ...registry import MODELS
from ..compat import DropPath
from ..layers import (BatchNorm2d, ConvBN, FoldsForInference, LayerNorm2d,
                      check_image_batch, empty_feature_maps, fuse_conv_bn,
                      fuse_modules, weights_dtype)
from ..wavelet import haar_analysis, haar_filters, haar_synthesis, \
    is_haar
from .base import MambaBackboneBase, rename_prefixes

__all__ = ['MobileMamba', 'checkpoint_filter_fn',
           'convert_official_classifier', 'to_official_classifier']

STAGE_NAMES = ('patch_embed', 'blocks1', 'blocks2', 'blocks3')
STAGE_STRIDES = (16, 16, 32, 64)

# Official classifier keys that have no place in the dense backbone.
CLASSIFIER_PREFIXES = ('head.', 'head_dist.')


def nearest_multiple_of_16(n: int) -> int:
    """Round to the nearest multiple of 16, halfway cases upwards."""
    lower = n // 16 * 16
    return lower if n - lower < 8 else lower + 16


def mrffi_channel_split(channels: int, global_ratio: float,
                        local_ratio: float) -> Tuple[int, int, int]:
    """(global, local, identity) channels of an MRFFI mixer.

    Global gets ``int(global_ratio * C)`` rounded to a multiple of 16 (the
    scan kernel's preferred granularity), local ``int(local_ratio * C)`` or
    whatever is left, identity the rest.
    """
    global_channels = nearest_multiple_of_16(int(global_ratio * channels))
    if global_channels > channels:
        raise ValueError(
            f'global_ratio {global_ratio} gives {global_channels} global '
            f'channels (rounded to a multiple of 16) for a {channels}-channel '
            'stage; lower it or widen the stage')
    local_channels = int(local_ratio * channels)
    if global_channels + local_channels > channels:
        local_channels = channels - global_channels
    return (global_channels, local_channels,
            channels - global_channels - local_channels)


def _is_residual_depthwise(conv: nn.Conv2d) -> bool:
    """A depthwise conv whose output aligns with its input pixel by pixel."""
    return (conv.groups == conv.in_channels == conv.out_channels and
            conv.stride == (1, 1) and conv.dilation == (1, 1) and
            all(k % 2 == 1 and p == k // 2
                for k, p in zip(conv.kernel_size, conv.padding)))


class Residual(FoldsForInference, nn.Module):
    """``x + m(x)``; a residual depthwise Conv-BN runs as one conv (the
    identity in its kernel centre) for inference (``FoldsForInference``)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def folds_for_inference(self) -> bool:
        # fuse() returns a new conv only for this form; for the others it
        # fuses m in place and returns self
        return isinstance(self.m, ConvBN) and _is_residual_depthwise(self.m.c)

    def forward_unfolded(self, x):
        return x + self.m(x)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        """Fuse ``m``; a residual depthwise Conv-BN becomes one conv whose
        kernel centre carries the identity."""
        if isinstance(self.m, ConvBN) and _is_residual_depthwise(self.m.c):
            conv = self.m.fuse()
            kh, kw = conv.kernel_size
            conv.weight[:, 0, kh // 2, kw // 2] += 1
            return conv
        if hasattr(self.m, 'fuse'):
            self.m = self.m.fuse()
        else:
            fuse_modules(self.m)
        return self


class FFN(nn.Module):
    """1x1 Conv-BN, ReLU, 1x1 Conv-BN (zero-initialised output BN)."""

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.pw1 = ConvBN(channels, hidden_channels)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden_channels, channels, bn_weight_init=0.)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate (parameters named as timm's SEModule)."""

    def __init__(self, channels: int, rd_ratio: float = 0.25,
                 rd_divisor: int = 8):
        super().__init__()
        # timm's make_divisible(channels * rd_ratio, rd_divisor, round_limit=0)
        reduced = max(rd_divisor,
                      int(channels * rd_ratio + rd_divisor / 2) //
                      rd_divisor * rd_divisor)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class PatchMerging(nn.Module):
    """Stride-2 downsampling: 1x1 expand to 4C, 3x3 depthwise stride 2, SE,
    1x1 project to the next width."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        hidden = 4 * in_channels
        self.conv1 = ConvBN(in_channels, hidden)
        self.act = nn.ReLU()
        self.conv2 = ConvBN(hidden, hidden, 3, stride=2, padding=1,
                            groups=hidden)
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = ConvBN(hidden, out_channels)

    def forward(self, x):
        x = self.act(self.conv2(self.act(self.conv1(x))))
        return self.conv3(self.se(x))


class ChannelScale(nn.Module):
    """Learned per-channel multiplier, ``weight`` of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, init_value: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels, 1, 1),
                                              init_value))

    def forward(self, x):
        return x * self.weight


class LocalDWConv(FoldsForInference, nn.Sequential):
    """Local branch of MRFFI: k x k depthwise Conv-BN, ReLU, 1x1 depthwise
    Conv-BN (``dwconv3x3`` is the official name, whatever k is); two folded
    convs for inference (``FoldsForInference``)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(OrderedDict(
            dwconv3x3=nn.Conv2d(channels, channels, kernel_size,
                                padding=kernel_size // 2, groups=channels,
                                bias=False),
            bn1=BatchNorm2d(channels),
            relu=nn.ReLU(inplace=True),
            dwconv1x1=nn.Conv2d(channels, channels, 1, groups=channels,
                                bias=False),
            bn2=BatchNorm2d(channels)))

    forward_unfolded = nn.Sequential.forward

    @torch.no_grad()
    def fuse(self) -> nn.Sequential:
        return nn.Sequential(fuse_conv_bn(self.dwconv3x3, self.bn1),
                             nn.ReLU(inplace=True),
                             fuse_conv_bn(self.dwconv1x1, self.bn2))


class SS2D(nn.Module):
    """Bidirectional 2-D selective scan (VMamba's SS2D, MobileMamba's
    ``v052d`` setting: two scan directions, channel-first layout).

    ``in_proj`` (1x1 Conv-BN) gives x and the gate z; x -> depthwise 3x3 +
    SiLU -> S6 over the row-major token sequence and over its reverse, the
    two outputs summed back in place -> LayerNorm -> * SiLU(z) ->
    ``out_proj`` (1x1 Conv-BN).
    """

    num_directions = 2
    scan_backend: Optional[str] = None  # set by the backbone

    def __init__(self, channels: int, ssm_ratio: float = 2.0,
                 d_state: int = 1):
        super().__init__()
        d_inner = int(ssm_ratio * channels)
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = math.ceil(channels / 16)
        k = self.num_directions

        # scan parameters: official names, layout and registration order;
        # initialisation "v2": A = -1, D = 1, dt weight and bias 0.1 * U[0, 1)
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, self.dt_rank + 2 * d_state, d_inner))
        bound = d_inner ** -0.5  # nn.Linear's default, as officially
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.A_logs = nn.Parameter(torch.zeros(k * d_inner, d_state))
        self.dt_projs_weight = nn.Parameter(
            0.1 * torch.rand(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(0.1 * torch.rand(k, d_inner))

        self.out_norm = LayerNorm2d(d_inner)
        self.in_proj = ConvBN(channels, 2 * d_inner)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(d_inner, d_inner, 3, padding=1,
                                groups=d_inner)
        self.out_proj = ConvBN(d_inner, channels)

    def selective_scan_2d(self, x: torch.Tensor) -> torch.Tensor:
        """Bidirectional S6 over an (B, D, H, W) map, then ``out_norm``."""
        batch, channels, height, width = x.shape
        length = height * width
        rank, d_state = self.dt_rank, self.d_state
        xs = cross_scan(x, self.num_directions).view(batch, -1, length)
        x_dbl = F.conv1d(xs, self.x_proj_weight.view(-1, channels, 1),
                         groups=self.num_directions)
        dts, Bs, Cs = x_dbl.view(batch, self.num_directions, -1,
                                 length).split((rank, d_state, d_state), 2)
        dts = F.conv1d(dts.reshape(batch, -1, length),
                       self.dt_projs_weight.view(-1, rank, 1),
                       groups=self.num_directions)
        ys = selective_scan(
            xs, dts, -torch.exp(self.A_logs.float()), Bs, Cs,
            D=self.Ds.float(), delta_bias=self.dt_projs_bias.view(-1).float(),
            delta_softplus=True, backend=self.scan_backend)
        y = cross_merge(ys.view(batch, self.num_directions, channels, length),
                        height, width)
        y = self.out_norm(y)
        return y.to(x.dtype)

    def forward(self, x):
        x, z = self.in_proj(x).chunk(2, dim=1)
        y = self.selective_scan_2d(self.act(self.conv2d(x)))
        return self.out_proj(y * self.act(z))

    @torch.no_grad()
    def fuse(self, output_scale: Optional[torch.Tensor] = None) -> 'SS2D':
        """Fold the projections' BNs (and a per-channel ``output_scale``
        applied after ``out_proj``) into the 1x1 convs."""
        self.in_proj = self.in_proj.fuse()
        out_proj = self.out_proj.fuse()
        if output_scale is not None:
            scale = output_scale.reshape(-1)
            out_proj.weight.mul_(scale.view(-1, 1, 1, 1))
            out_proj.bias.mul_(scale)
        self.out_proj = out_proj
        return self


class WTEMamba(nn.Module):
    """Global branch of MRFFI (official ``MBWTConv2d``, one wavelet level).

    ``base_scale * SS2D(x) + IWT(wavelet_scale * DWConv_kxk(WT(x)))``: a
    one-level Haar transform turns the map into 4 half-size sub-bands per
    channel, a depthwise k x k conv filters them, the inverse transform goes
    back. The Haar filters are buffers (the official code holds them as
    frozen parameters; a buffer keeps their state-dict keys and
    order, and the optimizer builder has no frozen parameter to warn about
    per block) and are used as stored: while they are the analytic
    Haar filters (as built, and in official checkpoints) the transforms run
    element-wise (fast, fusable); other values (loaded through
    ``load_state_dict``) are applied as convolutions. Change them only by
    loading a state dict, or call :meth:`filters_changed` afterwards.
    """

    def __init__(self, channels: int, kernel_size: int,
                 ssm_ratio: float = 2.0):
        super().__init__()
        analysis, synthesis = haar_filters(channels)
        self.register_buffer('wt_filter', analysis)
        self.register_buffer('iwt_filter', synthesis)
        self.analytic_haar = True
        self.global_atten = SS2D(channels, ssm_ratio, d_state=1)
        self.base_scale = ChannelScale(channels, 1.0)
        # lists of one: the official code supports several wavelet levels
        # and MobileMamba uses one; the names keep its checkpoint keys
        self.wavelet_convs = nn.ModuleList([
            nn.Conv2d(4 * channels, 4 * channels, kernel_size,
                      padding=kernel_size // 2, groups=4 * channels,
                      bias=False)])
        self.wavelet_scale = nn.ModuleList([ChannelScale(4 * channels, 0.1)])

    def filters_changed(self):
        """Re-check whether the stored filters are the analytic Haar ones
        (reads them: a device sync, once)."""
        self.analytic_haar = (is_haar(self.wt_filter) and
                              is_haar(self.iwt_filter))

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.filters_changed()

    def forward(self, x):
        channels = x.shape[1]
        analysis, synthesis = ((None, None) if self.analytic_haar else
                               (self.wt_filter, self.iwt_filter))
        bands = haar_analysis(x, analysis, dtype=x.dtype).flatten(1, 2)
        bands = self.wavelet_convs[0](bands)
        # the two scales (Identity once fused) are applied by the synthesis:
        # the fused kernel does them, the scan branch's add and the casts in
        # one pass; the torch code applies them in the official order
        return haar_synthesis(
            bands.unflatten(1, (channels, 4)), synthesis, x.shape[2:],
            band_scale=getattr(self.wavelet_scale[0], 'weight', None),
            residual=self.global_atten(x),
            residual_scale=getattr(self.base_scale, 'weight', None),
            dtype=x.dtype)

    @torch.no_grad()
    def fuse(self) -> 'WTEMamba':
        """Fold the BNs of SS2D and both per-channel scales into convs."""
        self.global_atten.fuse(self.base_scale.weight)
        self.base_scale = nn.Identity()
        conv = self.wavelet_convs[0]
        conv.weight.mul_(self.wavelet_scale[0].weight.view(-1, 1, 1, 1))
        self.wavelet_scale[0] = nn.Identity()
        return self


class MRFFI(nn.Module):
    """Multi-receptive field feature interaction: global (WTE-Mamba) | local
    (k x k depthwise) | identity channels, concatenated, ReLU, 1x1 Conv-BN
    (zero-initialised BN)."""

    def __init__(self, channels: int, global_ratio: float, local_ratio: float,
                 kernel_size: int, ssm_ratio: float = 2.0):
        super().__init__()
        self.split_sizes = mrffi_channel_split(channels, global_ratio,
                                               local_ratio)
        global_channels, local_channels, _ = self.split_sizes
        self.local_op = (LocalDWConv(local_channels, kernel_size)
                         if local_channels else nn.Identity())
        self.global_op = (WTEMamba(global_channels, kernel_size, ssm_ratio)
                          if global_channels else nn.Identity())
        self.proj = nn.Sequential(
            nn.ReLU(), ConvBN(channels, channels, bn_weight_init=0.))

    def forward(self, x):
        x_global, x_local, x_identity = torch.split(x, self.split_sizes, dim=1)
        return self.proj(torch.cat((self.global_op(x_global),
                                    self.local_op(x_local), x_identity),
                                   dim=1))


def _residual_dw(channels: int, bn_weight_init: float = 1.0) -> Residual:
    return Residual(ConvBN(channels, channels, 3, padding=1, groups=channels,
                           bn_weight_init=bn_weight_init))


class MobileMambaBlock(nn.Module):
    """Residual DW3x3, FFN, MRFFI mixer, DW3x3, FFN, and an outer skip with
    DropPath."""

    def __init__(self, channels: int, global_ratio: float, local_ratio: float,
                 kernel_size: int, ssm_ratio: float = 2.0,
                 drop_path: float = 0.):
        super().__init__()
        self.dw0 = _residual_dw(channels, bn_weight_init=0.)
        self.ffn0 = Residual(FFN(channels, 2 * channels))
        self.mixer = Residual(nn.Sequential(OrderedDict(attn=MRFFI(
            channels, global_ratio, local_ratio, kernel_size, ssm_ratio))))
        self.dw1 = _residual_dw(channels, bn_weight_init=0.)
        self.ffn1 = Residual(FFN(channels, 2 * channels))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def forward(self, x):
        y = self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))
        return x + self.drop_path(y)


def transition(in_channels: int, out_channels: int) -> List[nn.Module]:
    """Start of stages 2 and 3: residual DW + FFN, PatchMerging, residual DW
    + FFN at the new width."""
    return [
        nn.Sequential(_residual_dw(in_channels),
                      Residual(FFN(in_channels, 2 * in_channels))),
        PatchMerging(in_channels, out_channels),
        nn.Sequential(_residual_dw(out_channels),
                      Residual(FFN(out_channels, 2 * out_channels))),
    ]


_SHARED = dict(global_ratios=[0.8, 0.7, 0.6], local_ratios=[0.2, 0.2, 0.3],
               kernel_sizes=[7, 5, 3], ssm_ratio=2)
# B1, B2 and B4 share one architecture, trained at different resolutions.
_B_SERIES = dict(embed_dims=[200, 376, 448], depths=[2, 3, 2],
                 drop_path_rate=0.03, **_SHARED)


@MODELS.register_module()
class MobileMamba(MambaBackboneBase):
    """MobileMamba backbone (`MobileMamba: Lightweight Multi-Receptive Visual
    Mamba Network <https://arxiv.org/abs/2411.15941>`_).

    Args:
        arch (str | dict): 't2', 't4', 's6', 'b1', 'b2', 'b4' (any case) or a
            dict with ``embed_dims``, ``depths``, ``global_ratios``,
            ``local_ratios``, ``kernel_sizes`` (three entries each) and
            ``ssm_ratio``, optionally ``drop_path_rate`` and ``img_size``.
        out_indices (int | Sequence[int]): outputs among (patch_embed,
            blocks1, blocks2, blocks3), i.e. strides 16, 16, 32, 64; negative
            indices count from the end. The official detection backbone uses
            ``(1, 2, 3)``; ``(3,)`` gives the classifier form.
        frozen_stages (int): -1 freezes nothing, 0 ``patch_embed``, k
            ``patch_embed`` and ``blocks1`` .. ``blocks{k}``.
        norm_eval (bool): keep every BatchNorm in eval mode during training.
        drop_path_rate (float, optional): stochastic depth of the blocks'
            outer skip, increasing linearly over all blocks up to this value;
            None takes the arch's value (0 for T2/T4/S6, 0.03 for B1/B2/B4).
        scan_backend (str, optional): selective-scan backend, see
            :mod:`mmtinyvim.ops.scan`; None reads the
            ``MMTINYVIM_SCAN_BACKEND`` environment variable (at every scan)
            or picks automatically.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads an official (classification or
            dense) or mmtinyvim checkpoint strictly, see
            :func:`checkpoint_filter_fn`; other configs follow mmengine.

    Any H, W >= 32 is accepted; output i is ``ceil(H / stride_i) x
    ceil(W / stride_i)``. ``arch_zoo[name]['img_size']`` is the resolution
    the official ImageNet weights were trained and tested at.

    :meth:`switch_to_deploy` folds every Conv-BN pair, the residual depthwise
    Conv-BNs (identity into the kernel centre), the local DW-BN-ReLU-DW-BN
    branch, the SS2D projections with their output scale and the
    wavelet-band scale into single convs.
    """

    arch_zoo = {
        't2': dict(embed_dims=[144, 272, 368], depths=[1, 2, 2],
                   drop_path_rate=0., img_size=192, **_SHARED),
        't4': dict(embed_dims=[176, 368, 448], depths=[1, 2, 2],
                   drop_path_rate=0., img_size=192, **_SHARED),
        's6': dict(embed_dims=[192, 384, 448], depths=[1, 2, 2],
                   drop_path_rate=0., img_size=224, **_SHARED),
        'b1': dict(_B_SERIES, img_size=256),
        'b2': dict(_B_SERIES, img_size=384),
        'b4': dict(_B_SERIES, img_size=512),
    }
    arch_keys = ('embed_dims', 'depths', 'global_ratios', 'local_ratios',
                 'kernel_sizes', 'ssm_ratio')
    optional_arch_keys = ('drop_path_rate', 'img_size')
    num_stages = 3
    num_outputs = len(STAGE_NAMES)
    out_indices_kind = 'indices'
    out_index_noun = 'an output'
    output_names = STAGE_NAMES
    scan_mixer_type = SS2D

    def __init__(self,
                 arch: Union[str, dict] = 'b1',
                 out_indices: Union[int, Sequence[int]] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 scan_backend: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(arch, out_indices, frozen_stages, norm_eval,
                         drop_path_rate, scan_backend, init_cfg)
        arch = self.arch_settings
        dims, depths = arch['embed_dims'], arch['depths']
        self.embed_dims, self.depths = tuple(dims), tuple(depths)

        stem = dims[0]
        self.patch_embed = nn.Sequential(
            ConvBN(3, stem // 8, 3, stride=2, padding=1), nn.ReLU(),
            ConvBN(stem // 8, stem // 4, 3, stride=2, padding=1), nn.ReLU(),
            ConvBN(stem // 4, stem // 2, 3, stride=2, padding=1), nn.ReLU(),
            ConvBN(stem // 2, stem, 3, stride=2, padding=1))

        rates = torch.linspace(0, self.drop_path_rate, sum(depths)).tolist()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            layers = transition(dims[i - 1], dim) if i > 0 else []
            layers += [
                MobileMambaBlock(dim, arch['global_ratios'][i],
                                 arch['local_ratios'][i],
                                 arch['kernel_sizes'][i], arch['ssm_ratio'],
                                 rate)
                for rate in rates[sum(depths[:i]):sum(depths[:i + 1])]
            ]
            self.add_module(STAGE_NAMES[i + 1], nn.Sequential(*layers))

        channels = (dims[0], *dims)
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.out_strides = tuple(STAGE_STRIDES[i] for i in self.out_indices)
        self._finish_init()

    @classmethod
    def _check_custom_arch(cls, arch: dict) -> dict:
        def is_ratio(v):
            return isinstance(v, (int, float)) and 0 <= v <= 1

        checks = dict(
            embed_dims=lambda v: isinstance(v, int) and v >= 8,
            depths=lambda v: isinstance(v, int) and v > 0,
            global_ratios=is_ratio,
            local_ratios=is_ratio,
            kernel_sizes=lambda v: isinstance(v, int) and v > 0 and v % 2 == 1)
        for key, valid in checks.items():
            if not cls._is_per_stage(arch[key], valid):
                raise ValueError(
                    f'arch[{key!r}] must be {cls.num_stages} values '
                    '(embed_dims: ints >= 8; depths: positive '
                    'ints; ratios: in [0, 1]; kernel_sizes: odd ints), got '
                    f'{arch[key]!r}')
        if not isinstance(arch['ssm_ratio'], (int, float)) or \
                arch['ssm_ratio'] <= 0:
            raise ValueError('arch["ssm_ratio"] must be a positive number, '
                             f'got {arch["ssm_ratio"]!r}')
        for dim, g, l in zip(arch['embed_dims'], arch['global_ratios'],
                             arch['local_ratios']):
            mrffi_channel_split(dim, g, l)
        return dict(arch)

    def _resolve_drop_path_rate(self, drop_path_rate):
        if drop_path_rate is None:
            return self.arch_settings.get('drop_path_rate', 0.)
        return drop_path_rate

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = check_image_batch(x, name='MobileMamba',
                              dtype=weights_dtype(self))
        if not len(x):
            return empty_feature_maps(self, x, self.out_channels,
                                      self.out_strides)
        outs = []
        for index, name in enumerate(STAGE_NAMES[:self.out_indices[-1] + 1]):
            x = getattr(self, name)(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _stem_and_stages(self) -> List[nn.Module]:
        return [getattr(self, name) for name in STAGE_NAMES]

    def _filter_checkpoint(self, state_dict):
        return checkpoint_filter_fn(state_dict, self)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor],
                         model: MobileMamba) -> Dict[str, torch.Tensor]:
    """Map an official MobileMamba checkpoint to ``model``'s keys.

    Official classification and dense checkpoints use the backbone's own
    names; only the classifier (``head.*``, ``head_dist.*``) is dropped. All
    other keys pass unchanged and loading stays strict. The official
    downstream loader silently kept random weights when the file was wrapped
    (``net``, ``state_dict``...); here the caller unwraps with
    :func:`~mmtinyvim.utils.checkpoint.unwrap_state_dict` and a mismatch
    fails loudly.
    """
    if model.deploy:
        raise RuntimeError('Load checkpoints before switch_to_deploy(): a '
                           'deployed MobileMamba has fused parameters')
    return {k: v for k, v in state_dict.items()
            if not k.startswith(CLASSIFIER_PREFIXES)}


def convert_official_classifier(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official classification state dict -> keys of the mmpretrain
    ``ImageClassifier(backbone=MobileMamba(out_indices=(3,)), neck=GAP,
    head=MobileMambaClsHead)``: ``patch_embed.*``/``blocks*`` ->
    ``backbone.*``, ``head.*`` unchanged, ``head_dist.*`` ->
    ``head.head_dist.*``."""
    renames = [(f'{name}.', f'backbone.{name}.') for name in STAGE_NAMES]
    renames += [('head.', 'head.'), ('head_dist.', 'head.head_dist.')]
    return rename_prefixes(
        state_dict, renames,
        'Not an official MobileMamba classification state dict')


def to_official_classifier(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`convert_official_classifier`."""
    renames = [(f'backbone.{name}.', f'{name}.') for name in STAGE_NAMES]
    renames += [('head.head_dist.', 'head_dist.'), ('head.bn.', 'head.bn.'),
                ('head.l.', 'head.l.')]
    return rename_prefixes(
        state_dict, renames,
        'Not a MobileMamba ImageClassifier state dict (backbone '
        'out_indices=(3,), MobileMambaClsHead)')
