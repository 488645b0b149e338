"""Fused selective scan in Triton: forward and backward, float32 state.

One program owns ``BLOCK_D`` channels of one sample and walks the sequence in
chunks of ``BLOCK_L`` tokens. Inside a chunk the recurrence
``h_t = a_t * h_{t-1} + b_t`` (``a_t = exp(delta_t * A)``, ``b_t = delta_t *
B_t * u_t``) is a parallel ``tl.associative_scan``, one state index n at a
time; the state at the end of a chunk is carried into the next one. Nothing
but inputs and outputs touches global memory; the backward pass recomputes
the states (from the chunk-start states the forward pass stored when the
sequence spans several chunks) and runs the adjoint recurrence
``g_t = C_t * dy_t + a_{t+1} * g_{t+1}`` as a reverse scan.

Layout: mamba-ssm's, u/delta (batch, K*D, L), one output per direction
(one program per (sample, direction, channel block)).

The ops are registered with ``torch.library.custom_op`` so ``torch.compile``
keeps them as single nodes (no graph break); eager calls run the same
launchers through an ``autograd.Function`` (see :mod:`mmtinyvim.ops._triton`).
CUDA graphs capture either.
"""
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

# elements of one [BLOCK_D, BLOCK_L] tile; the backward pass keeps about
# twice as many tiles live as the forward pass
_FWD_TILE = 2048
_BWD_TILE = 1024
MAX_BLOCK_L = 1024


@triton.jit
def _combine(a_first, b_first, a_second, b_second):
    # composition of h -> a_first*h + b_first, then a_second*h + b_second
    return a_first * a_second, a_second * b_first + b_second


@triton.jit
def _program_channels(Dg, n_dblocks, K: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's sample b, direction k and channel block; the mask of
    its channels, their index in K*D and their row in (batch, K*D, L)."""
    b = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    dblock = pid % n_dblocks
    k = pid // n_dblocks
    d = dblock * BLOCK_D + tl.arange(0, BLOCK_D)
    ch = k * Dg + d
    return b, k, dblock, d < Dg, ch, b * (K * Dg) + ch


@triton.jit
def _load_channels(ptr, ch, d_mask):
    return tl.load(ptr + ch, mask=d_mask, other=0.).to(tl.float32)


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))


@triton.jit
def _scan_fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, skip_ptr,
                     bias_ptr, y_ptr, state_ptr, Dg, L, n_dblocks,
                     n_chunks, K: tl.constexpr, N: tl.constexpr,
                     N_PAD: tl.constexpr,
                     HAS_SKIP: tl.constexpr, HAS_BIAS: tl.constexpr,
                     SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    b, k, dblock, d_mask, ch, row = _program_channels(Dg, n_dblocks, K,
                                                      BLOCK_D)
    t_local = tl.arange(0, BLOCK_L)
    n_idx = tl.arange(0, N_PAD)
    if HAS_BIAS:
        bias = _load_channels(bias_ptr, ch, d_mask)
    if HAS_SKIP:
        skip = _load_channels(skip_ptr, ch, d_mask)
    h_carry = tl.zeros([BLOCK_D, N_PAD], dtype=tl.float32)
    for c in range(n_chunks):
        t = c * BLOCK_L + t_local
        t_mask = t < L
        mask = d_mask[:, None] & t_mask[None, :]
        u = tl.load(u_ptr + row[:, None] * L + t[None, :],
                    mask=mask, other=0.).to(tl.float32)
        dt = tl.load(delta_ptr + row[:, None] * L + t[None, :],
                     mask=mask, other=0.).to(tl.float32)
        if HAS_BIAS:
            dt += bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        # padding tokens: no decay, no input
        dt = tl.where(mask, dt, 0.)
        dt_u = dt * u
        y = tl.zeros([BLOCK_D, BLOCK_L], dtype=tl.float32)
        for n in tl.static_range(N):
            A_n = tl.load(A_ptr + ch * N + n, mask=d_mask,
                          other=0.).to(tl.float32)
            bc = ((b * K + k) * N + n) * L + t
            B_n = tl.load(B_ptr + bc, mask=t_mask, other=0.).to(tl.float32)
            C_n = tl.load(C_ptr + bc, mask=t_mask, other=0.).to(tl.float32)
            decay = tl.exp(dt * A_n[:, None])
            decay_cum, h = tl.associative_scan(
                (decay, dt_u * B_n[None, :]), 1, _combine)
            h_in = tl.sum(tl.where(n_idx[None, :] == n, h_carry, 0.), 1)
            if SAVE_STATES:
                tl.store(state_ptr + (row * n_chunks + c) * N + n,
                         h_in, mask=d_mask)
            h = h + decay_cum * h_in[:, None]
            y += h * C_n[None, :]
            h_last = tl.sum(
                tl.where(t_local[None, :] == BLOCK_L - 1, h, 0.), 1)
            h_carry = tl.where(n_idx[None, :] == n, h_last[:, None],
                               h_carry)
        if HAS_SKIP:
            y += skip[:, None] * u
        y_ptrs = y_ptr + row[:, None] * L + t[None, :]
        tl.store(y_ptrs, y, mask=mask)


@triton.jit
def _scan_bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, skip_ptr,
                     bias_ptr, dy_ptr, state_ptr, du_ptr, ddelta_ptr,
                     dA_ptr, dB_ptr, dC_ptr, dskip_ptr, Dg, L, n_dblocks,
                     n_chunks, K: tl.constexpr, N: tl.constexpr,
                     N_PAD: tl.constexpr,
                     HAS_SKIP: tl.constexpr, HAS_BIAS: tl.constexpr,
                     SOFTPLUS: tl.constexpr, LOAD_STATES: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    b, k, dblock, d_mask, ch, row = _program_channels(Dg, n_dblocks, K,
                                                      BLOCK_D)
    t_local = tl.arange(0, BLOCK_L)
    n_idx = tl.arange(0, N_PAD)
    if HAS_BIAS:
        bias = _load_channels(bias_ptr, ch, d_mask)
    if HAS_SKIP:
        skip = _load_channels(skip_ptr, ch, d_mask)
    dskip = tl.zeros([BLOCK_D], dtype=tl.float32)
    dA = tl.zeros([BLOCK_D, N_PAD], dtype=tl.float32)
    g_carry = tl.zeros([BLOCK_D, N_PAD], dtype=tl.float32)
    for c_rev in range(n_chunks):
        c = n_chunks - 1 - c_rev
        t = c * BLOCK_L + t_local
        t_mask = t < L
        mask = d_mask[:, None] & t_mask[None, :]
        next_mask = d_mask[:, None] & (t + 1 < L)[None, :]
        u = tl.load(u_ptr + row[:, None] * L + t[None, :],
                    mask=mask, other=0.).to(tl.float32)
        dy = tl.load(dy_ptr + row[:, None] * L + t[None, :],
                     mask=mask, other=0.).to(tl.float32)
        raw = tl.load(delta_ptr + row[:, None] * L + t[None, :],
                      mask=mask, other=0.).to(tl.float32)
        raw_next = tl.load(
            delta_ptr + row[:, None] * L + (t + 1)[None, :],
            mask=next_mask, other=0.).to(tl.float32)
        if HAS_BIAS:
            raw += bias[:, None]
            raw_next += bias[:, None]
        if SOFTPLUS:
            dt = _softplus(raw)
            dt_next = _softplus(raw_next)
        else:
            dt = raw
            dt_next = raw_next
        dt = tl.where(mask, dt, 0.)
        dt_next = tl.where(next_mask, dt_next, 0.)
        dt_u = dt * u
        ddt = tl.zeros([BLOCK_D, BLOCK_L], dtype=tl.float32)
        du = tl.zeros([BLOCK_D, BLOCK_L], dtype=tl.float32)
        for n in tl.static_range(N):
            A_n = tl.load(A_ptr + ch * N + n, mask=d_mask,
                          other=0.).to(tl.float32)
            bc = ((b * K + k) * N + n) * L + t
            B_n = tl.load(B_ptr + bc, mask=t_mask, other=0.).to(tl.float32)
            C_n = tl.load(C_ptr + bc, mask=t_mask, other=0.).to(tl.float32)
            inp = dt_u * B_n[None, :]
            decay_cum, h = tl.associative_scan(
                (tl.exp(dt * A_n[:, None]), inp), 1, _combine)
            if LOAD_STATES:
                h_in = tl.load(state_ptr + (row * n_chunks + c) * N +
                               n, mask=d_mask, other=0.)
                h = h + decay_cum * h_in[:, None]
            g_cum, g = tl.associative_scan(
                (tl.exp(dt_next * A_n[:, None]), dy * C_n[None, :]), 1,
                _combine, reverse=True)
            g_in = tl.sum(tl.where(n_idx[None, :] == n, g_carry, 0.), 1)
            g = g + g_cum * g_in[:, None]
            g_first = tl.sum(tl.where(t_local[None, :] == 0, g, 0.), 1)
            g_carry = tl.where(n_idx[None, :] == n, g_first[:, None],
                               g_carry)
            part = (((b * K + k) * n_dblocks + dblock) * N + n) * L + t
            tl.store(dC_ptr + part, tl.sum(dy * h, 0), mask=t_mask)
            tl.store(dB_ptr + part, tl.sum(g * dt_u, 0), mask=t_mask)
            # a_t * h_{t-1} = h_t - b_t: the decayed previous state
            g_decayed = g * (h - inp)
            dA = tl.where(n_idx[None, :] == n,
                          dA + tl.sum(g_decayed * dt, 1)[:, None], dA)
            ddt += g_decayed * A_n[:, None] + g * u * B_n[None, :]
            du += g * dt * B_n[None, :]
        if HAS_SKIP:
            du += skip[:, None] * dy
            dskip += tl.sum(dy * u, 1)
        if SOFTPLUS:
            ddt = ddt / (1.0 + tl.exp(-raw))
        tl.store(ddelta_ptr + row[:, None] * L + t[None, :], ddt,
                 mask=mask)
        du_ptrs = du_ptr + row[:, None] * L + t[None, :]
        tl.store(du_ptrs, du, mask=mask)
    tl.store(dA_ptr + row[:, None] * N + n_idx[None, :], dA,
             mask=d_mask[:, None] & (n_idx < N)[None, :])
    if HAS_SKIP:
        tl.store(dskip_ptr + row, dskip, mask=d_mask)


# True when TRITON_INTERPRET=1 was set at import: the kernels then run on CPU
# tensors through Triton's interpreter (slow; for tests and debugging)
INTERPRETED = not isinstance(_scan_fwd_kernel, triton.runtime.JITFunction)


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _blocks(length: int, channels: int, tile: int, max_block_l: int):
    block_l = min(_next_pow2(length), _next_pow2(max_block_l))
    block_d = max(1, min(_next_pow2(channels), tile // block_l))
    num_warps = max(1, min(8, block_d * block_l // 256))
    return block_l, block_d, num_warps


def _geometry(delta, B):
    batch, kd, length = delta.shape
    k = B.shape[1]
    return batch, k, kd // k, B.shape[2], length


def _launch_fwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
              B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor],
              delta_bias: Optional[torch.Tensor], delta_softplus: bool,
              max_block_l: int) -> Tuple[torch.Tensor, torch.Tensor]:
    batch, k, dg, d_state, length = _geometry(delta, B)
    block_l, block_d, num_warps = _blocks(length, dg, _FWD_TILE, max_block_l)
    n_chunks = triton.cdiv(length, block_l)
    n_dblocks = triton.cdiv(dg, block_d)
    save_states = n_chunks > 1
    y = torch.empty(batch, k * dg, length, device=u.device,
                    dtype=torch.float32)
    states = torch.empty(
        (batch, k * dg, n_chunks, d_state) if save_states else (0, ),
        device=u.device, dtype=torch.float32)
    grid = (batch, n_dblocks * k)
    _scan_fwd_kernel[grid](
        u, delta, A, B, C, D if D is not None else u,
        delta_bias if delta_bias is not None else u, y, states, dg, length,
        n_dblocks, n_chunks, K=k, N=d_state,
        N_PAD=max(2, _next_pow2(d_state)),
        HAS_SKIP=D is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus, SAVE_STATES=save_states, BLOCK_D=block_d,
        BLOCK_L=block_l, num_warps=num_warps)
    return y, states


# what torch.compile and export see (see mmtinyvim.ops._triton): custom ops
# with fake implementations and autograd
_scan_fwd = torch.library.custom_op('mmtinyvim::selective_scan_fwd',
                                    _launch_fwd, mutates_args=())


@_scan_fwd.register_fake
def _(u, delta, A, B, C, D, delta_bias, delta_softplus, max_block_l):
    batch, k, dg, d_state, length = _geometry(delta, B)
    block_l = _blocks(length, dg, _FWD_TILE, max_block_l)[0]
    n_chunks = -(-length // block_l)
    y = u.new_empty(batch, k * dg, length, dtype=torch.float32)
    states = u.new_empty(
        (batch, k * dg, n_chunks, d_state) if n_chunks > 1 else (0, ),
        dtype=torch.float32)
    return y, states


def _launch_bwd(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
              B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor],
              delta_bias: Optional[torch.Tensor], delta_softplus: bool,
              max_block_l: int, dy: torch.Tensor,
              states: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor,
                                             torch.Tensor, torch.Tensor,
                                             torch.Tensor, torch.Tensor]:
    batch, k, dg, d_state, length = _geometry(delta, B)
    block_l, block_d, num_warps = _blocks(length, dg, _BWD_TILE, max_block_l)
    n_chunks = triton.cdiv(length, block_l)
    n_dblocks = triton.cdiv(dg, block_d)
    f32 = dict(device=u.device, dtype=torch.float32)
    du = torch.empty(u.shape, **f32)
    ddelta = torch.empty(delta.shape, **f32)
    dA = torch.empty(batch, k * dg, d_state, **f32)
    dB = torch.empty(batch, k, n_dblocks, d_state, length, **f32)
    dC = torch.empty(batch, k, n_dblocks, d_state, length, **f32)
    dD = torch.empty(batch, k * dg, **f32)
    grid = (batch, n_dblocks * k)
    _scan_bwd_kernel[grid](
        u, delta, A, B, C, D if D is not None else u,
        delta_bias if delta_bias is not None else u, dy.contiguous(), states,
        du, ddelta, dA, dB, dC, dD, dg, length, n_dblocks, n_chunks,
        K=k, N=d_state, N_PAD=max(2, _next_pow2(d_state)),
        HAS_SKIP=D is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus, LOAD_STATES=n_chunks > 1, BLOCK_D=block_d,
        BLOCK_L=block_l, num_warps=num_warps)
    return du, ddelta, dA.sum(0), dB.sum(2), dC.sum(2), dD.sum(0)


_scan_bwd = torch.library.custom_op('mmtinyvim::selective_scan_bwd',
                                    _launch_bwd, mutates_args=())


@_scan_bwd.register_fake
def _(u, delta, A, B, C, D, delta_bias, delta_softplus, max_block_l, dy,
      states):
    f32 = dict(dtype=torch.float32)
    return (u.new_empty(u.shape, **f32), u.new_empty(delta.shape, **f32),
            u.new_empty(A.shape, **f32), u.new_empty(B.shape, **f32),
            u.new_empty(C.shape, **f32), u.new_empty(delta.shape[1], **f32))


def _setup_context(ctx, inputs, output):
    (u, delta, A, B, C, D, delta_bias, delta_softplus, max_block_l) = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, output[1])
    ctx.options = (delta_softplus, max_block_l)


def _gradients(ctx, grad_y, backward_kernel):
    u, delta, A, B, C, D, delta_bias, states = ctx.saved_tensors
    du, ddelta, dA, dB, dC, dD = backward_kernel(
        u, delta, A, B, C, D, delta_bias, *ctx.options, grad_y, states)
    return (du.to(u.dtype), ddelta.to(delta.dtype), dA.to(A.dtype),
            dB.to(B.dtype), dC.to(C.dtype),
            None if D is None else dD.to(D.dtype),
            None if delta_bias is None else
            ddelta.sum((0, 2)).to(delta_bias.dtype), None, None)


_scan_fwd.register_autograd(
    lambda ctx, grad_y, grad_states: _gradients(ctx, grad_y, _scan_bwd),
    setup_context=_setup_context)


class _SelectiveScan(torch.autograd.Function):
    """The eager form: the same kernels, called directly (forward(ctx, ...):
    a separate setup_context makes every apply() bind its arguments through
    inspect.signature). Returns the output only: the saved states are not
    an output here, so they need no gradient slot."""

    @staticmethod
    def forward(ctx, *inputs):
        y, states = _launch_fwd(*inputs)
        _setup_context(ctx, inputs, (y, states))
        return y

    @staticmethod
    def backward(ctx, grad_y):
        return _gradients(ctx, grad_y, _launch_bwd)


def selective_scan_triton(u, delta, A, B, C, D=None, delta_bias=None,
                          delta_softplus: bool = True,
                          max_block_l: int = MAX_BLOCK_L) -> torch.Tensor:
    """Selective scan in one kernel launch (and one for its gradient), with
    the shapes of :func:`mmtinyvim.ops.scan.selective_scan`.

    ``max_block_l`` is the longest stretch of tokens scanned in one piece;
    longer sequences are cut into chunks whose boundary states are carried
    over.
    """
    args = (u.contiguous(), delta.contiguous(), A.contiguous(),
            B.contiguous(), C.contiguous(),
            None if D is None else D.contiguous(),
            None if delta_bias is None else delta_bias.contiguous(),
            bool(delta_softplus), int(max_block_l))
    if torch.compiler.is_compiling():
        return _scan_fwd(*args)[0]
    return _SelectiveScan.apply(*args)
