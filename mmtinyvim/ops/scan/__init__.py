"""The selective scan (S6) used by both families, and its interchangeable backends.

Shapes follow mamba-ssm's ``selective_scan_fn`` with grouped B/C::

    u, delta      (batch, K * D, L)      K scan directions of D channels each
    A             (K * D, N)             N = d_state
    B, C          (batch, K, N, L)       shared by the D channels of a direction
    D             (K * D,)               skip term
    delta_bias    (K * D,)
    returns       (batch, K * D, L)      float32

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
    y_t = <C_t, h_t> + D * u_t,    delta = softplus(delta + delta_bias)

Backends (``backend=`` argument, the ``scan_backend`` of a backbone, or the
``MMTINYVIM_SCAN_BACKEND`` environment variable; ``auto`` picks the first that
applies):

* ``triton``: fused Triton kernels (forward and backward, float32 state),
  CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``, for debugging);
  ``auto``'s choice on CUDA: as fast as mamba-ssm in whole networks at
  inference, needs no compiled extension, is captured by CUDA graphs and is
  one node under ``torch.compile``; the only backend that fuses the
  cross-scan and merge of :func:`cross_selective_scan`;
* ``mamba_ssm``: mamba-ssm's CUDA kernel, CUDA tensors only (its backward is
  faster: 2-12% more img/s in eager training, docs/benchmark.md);
* ``torch``: pure PyTorch parallel prefix scan (log2 L steps), any device;
* ``reference``: token-by-token recurrence, the test oracle only.

The scan always runs in float32, also under autocast.
"""
import os
from typing import Optional

import torch
import torch.nn.functional as F

BACKENDS = ('auto', 'mamba_ssm', 'triton', 'torch', 'reference')
ENV_VAR = 'MMTINYVIM_SCAN_BACKEND'


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Cast to float32 (float64 stays), apply bias/softplus, broadcast B/C."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, kd, length = u.shape
    groups, d_state = B.shape[1], B.shape[2]
    per_group = kd // groups
    B = B[:, :, None].expand(batch, groups, per_group, d_state, length)
    C = C[:, :, None].expand(batch, groups, per_group, d_state, length)
    return (u, delta, A, B.reshape(batch, kd, d_state, length),
            C.reshape(batch, kd, d_state, length))


def _finish(y, u, D):
    return y if D is None else y + u * D.to(y.dtype)[:, None]


def selective_scan_reference(u, delta, A, B, C, D=None, delta_bias=None,
                             delta_softplus=True):
    """Sequential recurrence, one token at a time (test oracle)."""
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias,
                                 delta_softplus)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = (torch.exp(delta[..., t, None] * A) * h +
             (delta[..., t] * u[..., t])[..., None] * B[..., t])
        ys.append((h * C[..., t]).sum(-1))
    return _finish(torch.stack(ys, dim=-1), u, D)


def selective_scan_parallel(u, delta, A, B, C, D=None, delta_bias=None,
                            delta_softplus=True):
    """Parallel prefix form of the recurrence (pure PyTorch, any device).

    h_t = a_t * h_{t-1} + b_t is a scan over the pairs (a_t, b_t) with the
    associative composition (a, b) o (a', b') = (a a', a' b + b'); it takes
    ceil(log2 L) whole-sequence steps (Hillis-Steele) instead of L token
    steps. Only products of decays in (0, 1] are formed, so nothing
    overflows, and every op is plain elementwise torch (exports to ONNX,
    compiles without graph breaks).
    """
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias,
                                 delta_softplus)
    decay = torch.exp(delta[:, :, None, :] * A[None, :, :, None])  # b,kd,N,L
    state = (delta * u)[:, :, None, :] * B
    length, step = u.shape[-1], 1
    while True:  # at least one step, so A gets a (zero) gradient when L = 1
        state = state + decay * F.pad(state[..., :-step], (step, 0))
        if 2 * step >= length:
            break
        decay = decay * F.pad(decay[..., :-step], (step, 0), value=1.0)
        step *= 2
    return _finish((state * C).sum(2), u, D)


def _mamba_ssm_scan(u, delta, A, B, C, D=None, delta_bias=None,
                    delta_softplus=True):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    return selective_scan_fn(
        u.float().contiguous(), delta.float().contiguous(),
        A.float().contiguous(), B.float().contiguous(),
        C.float().contiguous(),
        None if D is None else D.float().contiguous(),
        z=None,
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus)


def _triton_scan(u, delta, A, B, C, D=None, delta_bias=None,
                 delta_softplus=True):
    return _triton_module().selective_scan_triton(u, delta, A, B, C, D,
                                                  delta_bias, delta_softplus)


_IMPLS = {
    'triton': _triton_scan,
    'mamba_ssm': _mamba_ssm_scan,
    'torch': selective_scan_parallel,
    'reference': selective_scan_reference,
}
_INSTALL_HINT = {
    'mamba_ssm': "install it on a CUDA machine with "
                 "`pip install 'mmtinyvim[gpu]'` (mamba-ssm>=2.2) and pass "
                 "CUDA tensors",
    'triton': "it needs the `triton` package and CUDA tensors (CPU tensors "
              "only with TRITON_INTERPRET=1 set before the first scan)",
}
_mamba_ssm_ok = None
_triton = None


def _triton_module():
    """The Triton kernels' module, imported on first use (or None)."""
    global _triton
    if _triton is None:
        try:
            from . import selective_scan_triton
            _triton = selective_scan_triton
        except ImportError:
            _triton = False
    return _triton or None


def triton_available(device: torch.device) -> bool:
    """True when the Triton kernels can run on tensors of ``device``."""
    module = _triton_module()
    if module is None:
        return False
    if device.type == 'cuda':
        return True
    return device.type == 'cpu' and module.INTERPRETED


def mamba_ssm_available() -> bool:
    """True when mamba-ssm's compiled CUDA kernel can be imported.

    Imported lazily and only when CUDA exists: importing mamba-ssm without its
    extension fails, so nothing imports it at package import time.
    """
    global _mamba_ssm_ok
    if _mamba_ssm_ok is None:
        _mamba_ssm_ok = False
        if torch.cuda.is_available():
            try:
                import selective_scan_cuda  # noqa: F401
                from mamba_ssm.ops.selective_scan_interface import \
                    selective_scan_fn  # noqa: F401
                _mamba_ssm_ok = True
            except Exception:  # ImportError or a broken CUDA build
                _mamba_ssm_ok = False
    return _mamba_ssm_ok


def check_backend(name: Optional[str]) -> str:
    """Validate a backend name (None means the environment default)."""
    source = 'argument'
    if name is None:
        name = os.environ.get(ENV_VAR, 'auto') or 'auto'
        source = f'environment variable {ENV_VAR}'
    if name not in BACKENDS:
        raise ValueError(f'Unknown selective-scan backend {name!r} '
                         f'(from {source}); '
                         f'valid: {", ".join(BACKENDS)}')
    return name


def resolve_backend(name: Optional[str], device: torch.device) -> str:
    """The concrete backend that ``name`` means for tensors on ``device``."""
    name = check_backend(name)
    if name == 'auto':
        if device.type == 'cuda' and triton_available(device):
            return 'triton'
        if device.type == 'cuda' and mamba_ssm_available():
            return 'mamba_ssm'
        return 'torch'
    if name == 'triton' and not triton_available(device):
        raise RuntimeError('Selective-scan backend "triton" is not '
                           f'available for {device.type} tensors: '
                           f'{_INSTALL_HINT["triton"]}')
    if name == 'mamba_ssm':
        if not mamba_ssm_available():
            raise RuntimeError('Selective-scan backend "mamba_ssm" is not '
                               f'available: {_INSTALL_HINT["mamba_ssm"]}')
        if device.type != 'cuda':
            raise RuntimeError('Selective-scan backend "mamba_ssm" needs CUDA '
                               f'tensors, got {device}; use "torch" on CPU')
    return name


class _ScanAsOneOp(torch.autograd.Function):
    """Wraps the scan into one traced node (``prim::PythonOp.ScanAsOneOp``).

    Used only under ``torch.jit.trace`` outside ONNX export, so that
    mmengine's FlopAnalyzer sees the scan as a single op it can count with
    :func:`selective_scan_flop_jit` instead of the torch implementation's
    internals.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus):
        return selective_scan_parallel(u, delta, A, B, C, D, delta_bias,
                                      delta_softplus)

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - tracing is inference only
        raise RuntimeError('_ScanAsOneOp is for FLOP counting only')


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None,
                   delta_softplus: bool = True,
                   backend: Optional[str] = None) -> torch.Tensor:
    """Run the selective scan with the chosen (or automatic) backend."""
    if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
        return _ScanAsOneOp.apply(u, delta, A, B, C, D, delta_bias,
                                  delta_softplus)
    impl = _IMPLS[resolve_backend(backend, u.device)]
    with torch.autocast(device_type=u.device.type, enabled=False):
        return impl(u, delta, A, B, C, D, delta_bias, delta_softplus)


SCAN_ORDERS = {'bidi': 2, 'cross2d': 4}


def scan_pixel_order(order: str, height: int, width: int,
                     device=None) -> torch.Tensor:
    """(K, H*W) long tensor: the pixel (row-major index) that direction k
    visits at step t.

    ``bidi`` (MobileMamba): row-major, then row-major reversed.
    ``cross2d`` (TinyViM, VMamba): row-major, column-major, then both
    reversed.
    """
    if order not in SCAN_ORDERS:
        raise ValueError(f'Unknown scan order {order!r}; valid: '
                         f'{", ".join(SCAN_ORDERS)}')
    row_major = torch.arange(height * width, device=device)
    if order == 'bidi':
        return torch.stack([row_major, row_major.flip(0)])
    column_major = row_major.view(height, width).t().reshape(-1)
    return torch.stack([row_major, column_major, row_major.flip(0),
                        column_major.flip(0)])


def cross_selective_scan(x, delta, A, B, C, D=None, delta_bias=None,
                         delta_softplus: bool = True, order: str = 'cross2d',
                         backend: Optional[str] = None) -> torch.Tensor:
    """Cross-scan, selective scan and merge in one call.

    Equivalent to scanning K re-ordered copies of ``x`` (see
    :func:`scan_pixel_order`) with :func:`selective_scan` and adding each
    direction's output back at the pixels it came from, but the scan inputs
    are given **per pixel**, in the layout of the feature map: because the
    projections producing delta, B and C act on each token separately,
    projecting the feature map once per direction (a 1x1 convolution) gives
    the same numbers as projecting each re-ordered copy.

    Args:
        x: (batch, D, H, W) the feature map (u of every direction).
        delta: (batch, K*D, H, W) raw time steps, direction-major channels.
        A: (K*D, N).  B, C: (batch, K, N, H, W).  D, delta_bias: (K*D,).
        order: ``'bidi'`` (K=2) or ``'cross2d'`` (K=4).

    Returns:
        (batch, D, H, W) float32: the merged output, D-skip terms included.

    With the ``triton`` backend the re-ordering and the merge happen inside
    the kernels (no K-fold copies); other backends gather, scan and scatter.
    """
    if order not in SCAN_ORDERS:
        raise ValueError(f'Unknown scan order {order!r}; valid: '
                         f'{", ".join(SCAN_ORDERS)}')
    directions = SCAN_ORDERS[order]
    if x.dim() != 4:
        raise ValueError('cross_selective_scan expects x of shape '
                         f'(batch, D, H, W), got {tuple(x.shape)}')
    batch, channels, height, width = x.shape
    d_state = A.shape[-1]
    expected = {
        'delta': (batch, directions * channels, height, width),
        'A': (directions * channels, d_state),
        'B': (batch, directions, d_state, height, width),
        'C': (batch, directions, d_state, height, width),
    }
    for name, tensor in (('delta', delta), ('A', A), ('B', B), ('C', C)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(
                f'cross_selective_scan(order={order!r}) with x of shape '
                f'{tuple(x.shape)} expects {name} of shape {expected[name]}, '
                f'got {tuple(tensor.shape)}')
    length = height * width
    flat_x, flat_delta = x.flatten(2), delta.flatten(2)
    flat_B, flat_C = B.flatten(3), C.flatten(3)
    if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
        name = 'torch'  # FLOP counting: selective_scan below is one node
    else:
        name = resolve_backend(backend, x.device)
    if name == 'triton':
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = _triton_module().selective_scan_triton(
                flat_x, flat_delta, A, flat_B, flat_C, D, delta_bias,
                delta_softplus, order=order, height=height)
        return y.view(batch, channels, height, width)

    pixels = scan_pixel_order(order, height, width, x.device)

    def to_scan_order(t):  # (batch, K, c, L) per pixel -> per scan step
        index = pixels[None, :, None, :].expand(t.shape)
        return torch.gather(t, 3, index)

    xs = flat_x[:, None].expand(batch, directions, channels, length)
    ys = selective_scan(
        to_scan_order(xs).reshape(batch, directions * channels, length),
        to_scan_order(flat_delta.view(batch, directions, channels,
                                      length)).flatten(1, 2),
        A, to_scan_order(flat_B), to_scan_order(flat_C), D, delta_bias,
        delta_softplus, backend=name)
    # back to pixel order: step t of direction k lands on pixels[k, t]
    steps = pixels.argsort(dim=1)[None, :, None, :].expand(
        batch, directions, channels, length)
    y = torch.gather(ys.view(batch, directions, channels, length), 3, steps)
    return y.sum(1).view(batch, channels, height, width)


def selective_scan_flop_jit(inputs, outputs):
    """mmengine/fvcore op handle: 9 * batch * L * (K*D) * N + batch * L * (K*D).

    The count VMamba and both papers use for one selective scan.
    """
    from mmengine.analysis.jit_handles import get_shape
    batch, kd, length = get_shape(inputs[0])
    d_state = get_shape(inputs[2])[1]
    # the D term is always counted, as VMamba's selective_scan_flop_jit does
    return 9 * batch * length * kd * d_state + batch * kd * length


SCAN_OP_HANDLES = {'prim::PythonOp._ScanAsOneOp': selective_scan_flop_jit}
