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
``MMTINYVIM_SCAN_BACKEND`` environment variable), one row each in
:data:`BACKEND_TABLE`; ``auto`` picks the available one of highest priority:

* ``triton``: fused Triton kernels (forward and backward, float32 state),
  CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``, for debugging);
  ``auto``'s choice on CUDA: needs no compiled extension, is captured by CUDA
  graphs and is one node under ``torch.compile``;
* ``mamba_ssm``: mamba-ssm's CUDA kernel, CUDA tensors only (its backward is
  faster in eager training, docs/benchmark.md);
* ``torch``: pure PyTorch parallel prefix scan (log2 L steps), any device;
* ``reference``: token-by-token recurrence, the test oracle only.

A backbone whose ``scan_backend`` is None passes None on, and every call
resolves it (environment variable, else ``auto``) for the tensors at hand:
both families read ``MMTINYVIM_SCAN_BACKEND`` on each forward pass.

The cross-scan layouts of the two families (re-ordering a feature map into
K token sequences and merging the K outputs back) are in
:mod:`mmtinyvim.ops.scan.cross`.

The scan always runs in float32, also under autocast.
"""
from typing import Callable, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from .._triton import available, kernels
from .._triton import check_backend as _check_backend

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
    return kernels('scan').selective_scan_triton(u, delta, A, B, C, D,
                                                  delta_bias, delta_softplus)


_mamba_ssm_ok = None


def triton_available(device: torch.device) -> bool:
    """True when the Triton kernels can run on tensors of ``device``."""
    return available('scan', device)


def mamba_ssm_available(device: torch.device) -> bool:
    """True when mamba-ssm's compiled CUDA kernel can be imported and the
    tensors are on CUDA.

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
    return _mamba_ssm_ok and device.type == 'cuda'


class Backend(NamedTuple):
    """One row of :data:`BACKEND_TABLE`."""
    available: Callable[[torch.device], bool]  # for tensors on this device
    impl: Callable[..., torch.Tensor]
    install_hint: str  # why it may be unavailable, and what to do
    auto_priority: Optional[int]  # higher first; None: never chosen by auto
    # device types ``auto`` picks it for (empty: any; TRITON_INTERPRET=1
    # makes Triton available on CPU, for debugging, not for auto)
    auto_devices: Tuple[str, ...] = ()


# A new backend is one row here (looked up at call time, so tests can wrap
# an implementation with monkeypatch.setitem).
BACKEND_TABLE = {
    'mamba_ssm': Backend(
        mamba_ssm_available, _mamba_ssm_scan,
        "install it on a CUDA machine with `pip install 'mmtinyvim[gpu]'` "
        '(mamba-ssm>=2.2) and pass CUDA tensors; use "torch" on CPU', 1,
        ('cuda', )),
    'triton': Backend(
        triton_available, _triton_scan,
        'it needs the `triton` package and CUDA tensors (CPU tensors only '
        'with TRITON_INTERPRET=1 set before the first scan)', 2, ('cuda', )),
    'torch': Backend(lambda device: True, selective_scan_parallel, '', 0),
    'reference': Backend(lambda device: True, selective_scan_reference, '',
                         None),
}
BACKENDS = ('auto', *BACKEND_TABLE)


def check_backend(name: Optional[str]) -> str:
    """Validate a backend name (None means the environment default)."""
    return _check_backend(name, ENV_VAR, 'selective-scan', BACKENDS)


def resolve_backend(name: Optional[str], device: torch.device) -> str:
    """The concrete backend that ``name`` means for tensors on ``device``."""
    name = check_backend(name)
    if name == 'auto':
        ranked = sorted((row.auto_priority, key)
                        for key, row in BACKEND_TABLE.items()
                        if row.auto_priority is not None and
                        (not row.auto_devices or
                         device.type in row.auto_devices))
        return next(key for _, key in reversed(ranked)
                    if BACKEND_TABLE[key].available(device))
    row = BACKEND_TABLE[name]
    if not row.available(device):
        raise RuntimeError(f'Selective-scan backend "{name}" is not '
                           f'available for {device.type} tensors: '
                           f'{row.install_hint}')
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
    impl = BACKEND_TABLE[resolve_backend(backend, u.device)].impl
    with torch.autocast(device_type=u.device.type, enabled=False):
        return impl(u, delta, A, B, C, D, delta_bias, delta_softplus)


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
