"""Layers shared by both families: Conv+BN pairs that fold for deployment
(and, by themselves, for inference: :class:`FoldsForInference`), the
BatchNorm2d that trains through the fused Triton kernels."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..ops import _triton
from ..ops import batchnorm as _batchnorm


@torch.no_grad()
def fold_bn(weight, bias, bn):
    """Fold the running statistics and affine of a BatchNorm that follows a
    conv/linear into it (torch's ``fuse_conv_bn_weights``).

    ``weight`` has the output channels first; ``bias`` may be None.
    Returns the folded (weight, bias) as plain tensors. The statistics are
    used whatever ``bn.training`` says: fusing is for deployment.
    """
    weight, bias = fuse_conv_bn_weights(weight, bias, bn.running_mean,
                                        bn.running_var, bn.eps, bn.weight,
                                        bn.bias)
    return weight.detach(), bias.detach()


@torch.no_grad()
def make_fused_conv(like: nn.Conv2d, weight, bias) -> nn.Conv2d:
    """A Conv2d with ``like``'s geometry holding ``weight`` and ``bias``."""
    conv = nn.Conv2d(like.in_channels, like.out_channels, like.kernel_size,
                     like.stride, like.padding, like.dilation, like.groups,
                     bias=True, device=weight.device, dtype=weight.dtype)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)
    return conv


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One Conv2d with bias equal to ``bn(conv(x))``, ``bn`` in eval mode."""
    return make_fused_conv(conv, *fold_bn(conv.weight, conv.bias, bn))


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode forward picks its kernels per
    map (:func:`mmtinyvim.ops.batchnorm.train_backend_for`).

    Same parameters, buffers and state-dict keys as torch's module (it is
    one: ``SyncBatchNorm.convert_sync_batchnorm``, ``norm_eval`` and the
    ``_BatchNorm`` checks see it). When the module is training with running
    statistics tracked and a float ``momentum`` on a 4-D map, the backend
    (``MMTINYVIM_BATCHNORM_BACKEND``, default ``auto``) decides: under
    ``auto`` NCHW maps on CUDA take ``torch.batch_norm`` directly (the same
    kernels as torch's module, less host time per call), ``triton`` forces
    the fused Triton kernels; channels-last maps, tracing and export, eval
    mode and every other case run torch's own forward.
    """

    def forward(self, x):
        if not (self.training and self.track_running_stats
                and self.momentum is not None and x.dim() == 4
                and not torch.jit.is_scripting()):
            return super().forward(x)
        backend = _batchnorm.train_backend_for(x)
        if backend == 'reference':
            return super().forward(x)
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if backend == 'native':
            return _batchnorm.batch_norm_train_native(
                x, self.weight, self.bias, self.running_mean,
                self.running_var, self.momentum, self.eps)
        return _batchnorm.batch_norm_train(
            x, self.weight, self.bias, self.running_mean, self.running_var,
            self.momentum, self.eps, backend='triton')


class FoldsForInference:
    """Mixin for a block whose ``fuse()`` returns a new module equal to the
    block in eval mode and leaves the block itself unchanged (Conv-BN pairs,
    re-parameterisable depthwise blocks).

    When the block and all its submodules are in eval mode and autograd is
    off (``torch.no_grad`` / ``torch.inference_mode``: validation, testing,
    inferencers, plain inference) or none of the block's parameters
    requires grad (a frozen stage in training: ``frozen_stages`` with
    ``norm_eval``), :meth:`inference_fold` gives that fused module and the
    mixin's ``forward`` runs it, else the subclass's ``forward_unfolded``
    (the block as written): the network as built skips
    the BatchNorm passes over the map that an explicit ``switch_to_deploy``
    would remove, with no switch. The fused module is built on first use and
    kept (as a plain attribute: not a submodule, not in the state dict, not
    pickled) until any parameter or buffer of the block is replaced or
    changed in place (optimizer steps, ``load_state_dict``, ``.to()``,
    running-statistics updates all do) or ``train()`` / ``eval()`` is
    called on it. A change made through ``tensor.data`` is the exception:
    it bypasses the version counter the cache checks, so call ``eval()``
    again after one (mmengine's validation and test loops do, after
    EMAHook swaps the weights in that way).
    While autograd records for the block's parameters, while tracing or
    exporting, and under ``torch.compile`` (whose graph folds by itself)
    the block runs as written.
    """

    _FOLDED = '_inference_folded'

    def forward(self, x):
        folded = self.inference_fold()
        if folded is not None:
            return folded(x)
        return self.forward_unfolded(x)

    def forward_unfolded(self, x):
        """The block as written (each subclass's own forward)."""
        raise NotImplementedError

    def folds_for_inference(self) -> bool:
        """Whether this block folds at all (a subclass whose ``fuse()``
        changes the block itself for some of its forms says no for those)."""
        return True

    def inference_fold(self) -> Optional[nn.Module]:
        """The fused module to run instead of this block now, or None."""
        if self.training or _triton.tracing() or \
                torch.compiler.is_compiling() or \
                not self.folds_for_inference():
            return None
        state = self._fold_state()
        if state is None:
            return None
        cached = self.__dict__.get(self._FOLDED)
        # the cache holds the tensors themselves, so their ids stay theirs
        if cached is not None and cached[1] == state[1]:
            return cached[2]
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and
               m.running_mean is None for m in self.modules()):
            return None  # batch statistics in eval mode: nothing to fold
        # its weights are derived: no gradient (and no weight-gradient
        # kernels) for them when a frozen block runs with autograd on
        fused = self.fuse().requires_grad_(False)
        self.__dict__[self._FOLDED] = (*state, fused)
        return fused

    def _fold_state(self):
        """(tensors, [id, version, data pointer] of each) of the block's
        parameters and buffers; None while any of its modules trains, or
        while autograd records and a parameter requires grad (the folded
        weights carry no gradient to the parameters; the input's gradient
        is the same either way). Plain int lists: compared in one C call,
        a few µs per block."""
        recording = torch.is_grad_enabled()
        tensors, key = [], []
        stack = [self]
        try:
            while stack:
                module = stack.pop()
                if module.training:
                    return None
                for t in module._parameters.values():
                    if t is not None:
                        if recording and t.requires_grad:
                            return None
                        tensors.append(t)
                        key += (id(t), t._version, t.data_ptr())
                for t in module._buffers.values():
                    if t is not None:
                        tensors.append(t)
                        key += (id(t), t._version, t.data_ptr())
                stack.extend(module._modules.values())
        except RuntimeError:  # inference tensors keep no version counter
            return None
        return tensors, key

    def inference_fold_cached(self) -> Optional[nn.Module]:
        """The fused module kept from the last folded call, or None."""
        cached = self.__dict__.get(self._FOLDED)
        return None if cached is None else cached[2]

    def train(self, mode: bool = True):
        self.__dict__.pop(self._FOLDED, None)
        return super().train(mode)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop(self._FOLDED, None)
        return state


class ConvBN(FoldsForInference, nn.Sequential):
    """Bias-free Conv2d followed by BatchNorm2d (state-dict keys ``c``, ``bn``);
    one folded conv for inference (:class:`FoldsForInference`).
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1,
                 padding=0, groups=1, bn_weight_init=1.0):
        super().__init__()
        self.add_module('c', nn.Conv2d(in_channels, out_channels, kernel_size,
                                       stride, padding, groups=groups,
                                       bias=False))
        self.add_module('bn', BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward_unfolded(self, x):
        return self.bn(self.c(x))

    def fuse(self) -> nn.Conv2d:
        """One Conv2d with bias that equals this pair in eval mode."""
        return fuse_conv_bn(self.c, self.bn)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map.

    mmpretrain's and timm's LayerNorm2d compute the same and have the same
    parameter names (``weight``, ``bias``), but the backbones must import
    with torch alone (no mm packages, no timm), so this is torch's LayerNorm
    applied channels-last.
    """

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape,
                         self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, recursively, every child that has ``fuse()`` by its result."""
    for name, child in module.named_children():
        if hasattr(child, 'fuse'):
            setattr(module, name, child.fuse())
        else:
            fuse_modules(child)
    return module


# Image batch dtypes the backbones take; the batch is cast to the dtype of
# their weights (float32 unless the model was converted), under autocast too.
IMAGE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_image_batch(x, min_size: int = 32, name: str = 'backbone',
                      dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Refuse anything but an (N, 3, H, W) tensor of a dtype in
    :data:`IMAGE_DTYPES` with H, W >= min_size; return it cast to ``dtype``
    (the weights' dtype) when given.

    N may be 0: see :func:`empty_feature_maps`.
    """
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 3:
        what = (f'a tensor of shape {tuple(x.shape)}' if torch.is_tensor(x)
                else type(x).__name__)
        raise ValueError(f'{name} expects a 4-D image batch (N, 3, H, W), '
                         f'got {what}')
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f'{name} needs H and W >= {min_size}, got '
                         f'{x.shape[2]}x{x.shape[3]}')
    if x.dtype not in IMAGE_DTYPES:
        valid = ', '.join(str(d).replace('torch.', '') for d in IMAGE_DTYPES)
        raise ValueError(
            f'{name} expects a floating-point image batch ({valid}; it is '
            f"cast to the weights' dtype), got {x.dtype}" +
            ('; normalise the images first'
             if not (x.is_floating_point() or x.is_complex()) else ''))
    if dtype is not None and x.dtype != dtype:
        x = x.to(dtype)
    return x


def weights_dtype(module: nn.Module) -> Optional[torch.dtype]:
    """The dtype of ``module``'s first floating-point parameter, or None."""
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return None


def empty_feature_maps(module: nn.Module, x: torch.Tensor,
                       channels: Sequence[int],
                       strides: Sequence[int]) -> Tuple[torch.Tensor, ...]:
    """The outputs of a backbone for the empty batch ``x`` (N = 0), without
    running it: (0, C, ceil(H / s), ceil(W / s)) per output, in ``x``'s
    dtype (the autocast dtype under autocast) and device. While gradients
    are recorded they are connected to the first trainable parameter, so a
    loss built on them can be backpropagated (with zero gradients)."""
    height, width = x.shape[2:]
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    outs = [x.new_zeros((0, c, -(-height // s), -(-width // s)), dtype=dtype)
            for c, s in zip(channels, strides)]
    if torch.is_grad_enabled():
        trainable = [p for p in module.parameters() if p.requires_grad]
        if trainable:
            anchor = trainable[0].sum().to(dtype) * 0
            outs = [out + anchor for out in outs]
    return tuple(outs)
