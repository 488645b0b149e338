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

* ``mamba_ssm``: mamba-ssm's CUDA kernel, CUDA tensors only;
* ``triton``: reserved for a fused Triton kernel (not shipped yet);
* ``torch``: chunked pure PyTorch, any device; inside a chunk the recurrence
  is a masked decay matrix, across chunks a short loop over chunk states;
* ``reference``: token-by-token recurrence, the test oracle only.

The scan always runs in float32, also under autocast.
"""
import os
from typing import Optional

import torch
import torch.nn.functional as F

BACKENDS = ('auto', 'mamba_ssm', 'triton', 'torch', 'reference')
ENV_VAR = 'MMTINYVIM_SCAN_BACKEND'
_CHUNK = 32


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


def selective_scan_chunked(u, delta, A, B, C, D=None, delta_bias=None,
                           delta_softplus=True, chunk: int = _CHUNK):
    """Chunked parallel form of the recurrence (pure PyTorch, any device).

    Within a chunk of T tokens with cumulative log-decay S_t = sum_{s<=t} dA_s,
    h_t = sum_{s<=t} exp(S_t - S_s) dBu_s + exp(S_t) h_in. Only the exponent of
    non-positive differences is taken (masked entries become exp(-inf) = 0), so
    no term can overflow whatever the decay rates.
    """
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias,
                                 delta_softplus)
    batch, kd, length = u.shape
    d_state = A.shape[1]
    T = min(chunk, length)
    n_chunks = -(-length // T)
    pad = n_chunks * T - length

    def chunks(x):  # (..., L) -> (..., n_chunks, T)
        if pad:
            x = F.pad(x, (0, pad))
        return x.unflatten(-1, (n_chunks, T))

    # padded tokens get delta = 0: no decay, no input, no effect on the state
    dt = chunks(delta)                                   # (b, kd, c, T)
    du = chunks(delta * u)                               # (b, kd, c, T)
    log_decay = dt[..., None] * A[:, None, None, :]      # (b, kd, c, T, N)
    cum = log_decay.cumsum(dim=-2)
    Bc = chunks(B).permute(0, 1, 3, 4, 2)                # (b, kd, c, T, N)
    Cc = chunks(C).permute(0, 1, 3, 4, 2)
    causal = torch.ones(T, T, dtype=torch.bool, device=u.device).tril()

    y = u.new_zeros(batch, kd, n_chunks, T)
    chunk_state = u.new_zeros(batch, kd, n_chunks, d_state)
    for n in range(d_state):  # d_state is 1 or 8: keeps T x T memory small
        seg = cum[..., :, None, n] - cum[..., None, :, n]     # (.., t, s)
        decay = torch.exp(seg.masked_fill(~causal, float('-inf')))
        weights = decay * (Cc[..., :, None, n] * Bc[..., None, :, n])
        y = y + (weights @ du[..., None]).squeeze(-1)
        # state at the end of each chunk from that chunk's own tokens
        chunk_state[..., n] = (decay[..., -1, :] * Bc[..., n] * du).sum(-1)

    # carry states across chunks (a loop over chunks, not tokens)
    chunk_decay = torch.exp(cum[..., -1, :])                # (b, kd, c, N)
    carried = []
    h = u.new_zeros(batch, kd, d_state)
    for c in range(n_chunks):
        carried.append(h)
        h = chunk_decay[:, :, c] * h + chunk_state[:, :, c]
    h_in = torch.stack(carried, dim=2)                      # (b, kd, c, N)
    y = y + (Cc * torch.exp(cum) * h_in[..., None, :]).sum(-1)
    y = y.flatten(-2)[..., :length]
    return _finish(y, u, D)


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


_IMPLS = {
    'mamba_ssm': _mamba_ssm_scan,
    'torch': selective_scan_chunked,
    'reference': selective_scan_reference,
}
_INSTALL_HINT = {
    'mamba_ssm': "install it on a CUDA machine with "
                 "`pip install 'mmtinyvim[gpu]'` (mamba-ssm>=2.2) and pass "
                 "CUDA tensors",
    'triton': "the fused Triton scan is not part of this release; use "
              "'auto', 'torch' or 'mamba_ssm'",
}
_mamba_ssm_ok = None


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
        if device.type == 'cuda' and mamba_ssm_available():
            return 'mamba_ssm'
        return 'torch'
    if name == 'triton':
        raise RuntimeError('Selective-scan backend "triton" is not '
                           f'available: {_INSTALL_HINT["triton"]}')
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
    :func:`selective_scan_flop_jit` instead of the chunked implementation's
    internals.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus):
        return selective_scan_chunked(u, delta, A, B, C, D, delta_bias,
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
