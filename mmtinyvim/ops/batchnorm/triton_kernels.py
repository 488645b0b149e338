"""BatchNorm2d in training mode as Triton kernels, forward and backward.

The op is memory-bound: the kernels read ``x`` twice and write ``y`` once
forward, read ``x`` and ``dy`` twice and write ``dx`` once backward, in two
launches each way.

Work split: the elements of one channel are its (N, H*W) matrix, cut into
blocks of ``RB`` rows x ``B`` columns; one program owns one block of one
channel (grid: channels x row blocks x column blocks, so that a map with
few channels still fills the GPU). Its tile is ``R`` rows x ``B`` columns,
walked over its ``RB`` rows; the columns are the flattened H*W positions,
so NCHW rows load contiguously (channels-last maps take the same path with
strided loads: correct, not fast).

Forward:

1. statistics: each program reduces its block to (count, mean, M2) of
   ``x - K``, ``K`` the channel's first element (a shift that keeps the sums
   small for maps with a large mean); tile by tile a two-pass mean and M2
   in registers, merged into the program's running one with Chan's formula.
   The partials go to a (3, C, P) buffer, P blocks per channel;
2. normalisation: each program merges its channel's P partials (the
   parallel form of Chan's merge: the mean from the counts, M2 as the sum
   of the partial M2s plus each partial's count times its squared distance
   to that mean), then writes ``y = ((x - K) - mean) * w * rstd + b``. The
   channel's first program also writes the saved mean and 1/std for the
   backward pass and updates the running statistics as torch does
   (``(1 - momentum) * running + momentum * batch``, unbiased variance).

Backward, with xhat = (x - mean) * rstd:

3. partial sums of ``dy`` and ``dy * (x - mean)`` per block, (2, C, P);
4. ``dx = w * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))``; the
   channel's first program writes ``d weight = rstd * sum(dy * (x - mean))``
   and ``d bias = sum(dy)``.

Partials are summed in a fixed order by every program (no atomics: the
results are deterministic). Values are accumulated in float32 (float64 for
float64 inputs) and rounded once to the output's dtype.
"""
import functools
from typing import Optional

import torch
import triton
import triton.language as tl

# elements of one tile (rows x columns)
_TILE = 4096
# at most this many columns (H*W positions) per block
_MAX_COLS = 1024
# about this many elements per program, unless fewer programs than
# _MIN_WAVES per multiprocessor would result
_TARGET = 16384
_MIN_WAVES = 4
# partials merged per step in the element-wise kernels
_PART_BLOCK = 256
# the sizes and counts vary with the shape: not specialised on, but for
# H*W, whose divisibility by 16 (and the strides') lets a row's loads and
# stores vectorise
_SIZES = ['N', 'RB', 'n_hb', 'P', 'n_tiles']


@triton.jit
def _block(pid, P, n_hb, RB, HW, B: tl.constexpr):
    """(channel, partial index, first row, columns and their mask) of the
    block of program ``pid``."""
    c = pid // P
    p = pid % P
    rb = p // n_hb
    cols = (p % n_hb) * B + tl.arange(0, B)
    return c.to(tl.int64), p, rb * RB, cols, cols < HW


@triton.jit
def _tile(row0, t, row_end, col_mask, R: tl.constexpr):
    """Rows (int64) and mask of the ``t``-th R-row tile of a block that
    starts at ``row0`` and ends before ``row_end``."""
    n = (row0 + t * R + tl.arange(0, R)).to(tl.int64)
    return n, (n < row_end)[:, None] & col_mask[None, :]


@triton.jit
def _at(base, n, row_stride, col_off):
    """Pointers of a tile: rows ``n`` of ``row_stride``, column offsets."""
    return base + (n * row_stride)[:, None] + col_off[None, :]


@triton.jit(do_not_specialize=_SIZES)
def _bn_stats_kernel(x_ptr, part_ptr, N, HW, sxn, sxc, sxs, RB, n_hb, P,
                     n_tiles, R: tl.constexpr, B: tl.constexpr,
                     ACC: tl.constexpr):
    pid = tl.program_id(0)
    c, p, row0, cols, col_mask = _block(pid, P, n_hb, RB, HW, B)
    base = x_ptr + c * sxc
    shift = tl.load(base).to(ACC)
    col_off = cols.to(tl.int64) * sxs
    n_cols = tl.minimum(HW - (p % n_hb) * B, B)
    row_end = tl.minimum(row0 + RB, N)
    count = tl.full([], 0.0, ACC)
    mean = tl.full([], 0.0, ACC)
    m2 = tl.full([], 0.0, ACC)
    for t in range(n_tiles):
        r0 = row0 + t * R
        n, mask = _tile(row0, t, row_end, col_mask, R)
        v = tl.load(_at(base, n, sxn, col_off), mask=mask, other=0.).to(ACC)
        # the tile's own count, mean and M2 (two passes over registers)
        k = (tl.maximum(tl.minimum(row_end - r0, R), 0) * n_cols).to(ACC)
        v = tl.where(mask, v - shift, 0.)
        k_safe = tl.maximum(k, 1.0)
        tile_mean = tl.sum(tl.sum(v, 1), 0) / k_safe
        d = tl.where(mask, v - tile_mean, 0.)
        tile_m2 = tl.sum(tl.sum(d * d, 1), 0)
        # Chan's merge into the program's running statistics
        total = count + k
        delta = tile_mean - mean
        frac = k / tl.maximum(total, 1.0)
        mean += delta * frac
        m2 += tile_m2 + delta * delta * count * frac
        count = total
    idx = c * P + p
    CP = tl.num_programs(0)
    tl.store(part_ptr + idx, count)
    tl.store(part_ptr + CP + idx, mean)
    tl.store(part_ptr + 2 * CP + idx, m2)


@triton.jit
def _merge_stats(part_ptr, c, P, CP, PB: tl.constexpr, ACC: tl.constexpr):
    """Count, mean (of x - K) and M2 of channel ``c`` from its P partials."""
    base = part_ptr + c * P
    total = tl.full([], 0.0, ACC)
    weighted = tl.full([], 0.0, ACC)
    for p0 in range(0, P, PB):
        i = p0 + tl.arange(0, PB)
        m = i < P
        k = tl.load(base + i, mask=m, other=0.)
        mu = tl.load(base + CP + i, mask=m, other=0.)
        total += tl.sum(k, 0)
        weighted += tl.sum(k * mu, 0)
    mean = weighted / total
    m2 = tl.full([], 0.0, ACC)
    for p0 in range(0, P, PB):
        i = p0 + tl.arange(0, PB)
        m = i < P
        k = tl.load(base + i, mask=m, other=0.)
        mu = tl.load(base + CP + i, mask=m, other=0.)
        q = tl.load(base + 2 * CP + i, mask=m, other=0.)
        d = mu - mean
        m2 += tl.sum(q + k * d * d, 0)
    return total, mean, m2


@triton.jit(do_not_specialize=_SIZES)
def _bn_fwd_kernel(x_ptr, y_ptr, part_ptr, w_ptr, b_ptr, rm_ptr, rv_ptr,
                   new_rm_ptr, new_rv_ptr, mean_ptr, rstd_ptr, N, HW, sxn,
                   sxc, sxs, syn, syc, sys,
                   RB, n_hb, P, n_tiles, momentum, eps, HAS_W: tl.constexpr,
                   HAS_B: tl.constexpr, TRACK: tl.constexpr,
                   R: tl.constexpr, B: tl.constexpr, PB: tl.constexpr,
                   ACC: tl.constexpr):
    pid = tl.program_id(0)
    c, p, row0, cols, col_mask = _block(pid, P, n_hb, RB, HW, B)
    base = x_ptr + c * sxc
    shift = tl.load(base).to(ACC)
    total, mean, m2 = _merge_stats(part_ptr, c, P, tl.num_programs(0), PB,
                                   ACC)
    var = m2 / total
    rstd = 1.0 / tl.sqrt(var + eps)
    scale = rstd
    if HAS_W:
        scale = tl.load(w_ptr + c).to(ACC) * rstd
    bias = tl.full([], 0.0, ACC)
    if HAS_B:
        bias = tl.load(b_ptr + c).to(ACC)
    first = p == 0
    batch_mean = shift + mean
    tl.store(mean_ptr + c, batch_mean, mask=first)
    tl.store(rstd_ptr + c, rstd, mask=first)
    if TRACK:
        # torch's update: unbiased batch variance, momentum-weighted
        unbiased = m2 / tl.maximum(total - 1.0, 1.0)
        rm = tl.load(rm_ptr + c).to(ACC)
        rv = tl.load(rv_ptr + c).to(ACC)
        tl.store(new_rm_ptr + c, (momentum * batch_mean +
                                  (1 - momentum) * rm)
                 .to(new_rm_ptr.dtype.element_ty), mask=first)
        tl.store(new_rv_ptr + c, (momentum * unbiased + (1 - momentum) * rv)
                 .to(new_rv_ptr.dtype.element_ty), mask=first)

    x_off = cols.to(tl.int64) * sxs
    y_off = cols.to(tl.int64) * sys
    y_base = y_ptr + c * syc
    row_end = tl.minimum(row0 + RB, N)
    for t in range(n_tiles):
        n, mask = _tile(row0, t, row_end, col_mask, R)
        v = tl.load(_at(base, n, sxn, x_off), mask=mask, other=0.).to(ACC)
        out = ((v - shift) - mean) * scale + bias
        tl.store(_at(y_base, n, syn, y_off),
                 out.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=_SIZES)
def _bn_bwd_sums_kernel(g_ptr, x_ptr, mean_ptr, part_ptr, N, HW, sgn, sgc,
                        sgs, sxn, sxc, sxs, RB, n_hb, P, n_tiles,
                        R: tl.constexpr, B: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    c, p, row0, cols, col_mask = _block(pid, P, n_hb, RB, HW, B)
    mean = tl.load(mean_ptr + c).to(ACC)
    g_base = g_ptr + c * sgc
    x_base = x_ptr + c * sxc
    g_off = cols.to(tl.int64) * sgs
    x_off = cols.to(tl.int64) * sxs
    row_end = tl.minimum(row0 + RB, N)
    sum_g = tl.zeros([R, B], ACC)
    sum_gx = tl.zeros([R, B], ACC)
    for t in range(n_tiles):
        n, mask = _tile(row0, t, row_end, col_mask, R)
        g = tl.load(_at(g_base, n, sgn, g_off), mask=mask, other=0.).to(ACC)
        v = tl.load(_at(x_base, n, sxn, x_off), mask=mask, other=0.).to(ACC)
        sum_g += g
        sum_gx += tl.where(mask, g * (v - mean), 0.)
    idx = c * P + p
    CP = tl.num_programs(0)
    tl.store(part_ptr + idx, tl.sum(tl.sum(sum_g, 1), 0))
    tl.store(part_ptr + CP + idx, tl.sum(tl.sum(sum_gx, 1), 0))


@triton.jit(do_not_specialize=_SIZES)
def _bn_bwd_dx_kernel(g_ptr, x_ptr, dx_ptr, mean_ptr, rstd_ptr, w_ptr,
                      part_ptr, dw_ptr, db_ptr, N, HW, sgn, sgc, sgs, sxn,
                      sxc, sxs, sdn, sdc, sds, RB, n_hb, P, n_tiles, count,
                      HAS_W: tl.constexpr, R: tl.constexpr, B: tl.constexpr,
                      PB: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    c, p, row0, cols, col_mask = _block(pid, P, n_hb, RB, HW, B)
    CP = tl.num_programs(0)
    base = part_ptr + c * P
    sum_g = tl.full([], 0.0, ACC)
    sum_gx = tl.full([], 0.0, ACC)
    for p0 in range(0, P, PB):
        i = p0 + tl.arange(0, PB)
        m = i < P
        sum_g += tl.sum(tl.load(base + i, mask=m, other=0.), 0)
        sum_gx += tl.sum(tl.load(base + CP + i, mask=m, other=0.), 0)
    mean = tl.load(mean_ptr + c).to(ACC)
    rstd = tl.load(rstd_ptr + c).to(ACC)
    first = p == 0
    tl.store(dw_ptr + c, (sum_gx * rstd).to(dw_ptr.dtype.element_ty),
             mask=first)
    tl.store(db_ptr + c, sum_g.to(db_ptr.dtype.element_ty), mask=first)
    coef = rstd
    if HAS_W:
        coef = tl.load(w_ptr + c).to(ACC) * rstd
    mean_g = sum_g / count
    proj = sum_gx / count * rstd * rstd

    g_base = g_ptr + c * sgc
    x_base = x_ptr + c * sxc
    d_base = dx_ptr + c * sdc
    g_off = cols.to(tl.int64) * sgs
    x_off = cols.to(tl.int64) * sxs
    d_off = cols.to(tl.int64) * sds
    row_end = tl.minimum(row0 + RB, N)
    for t in range(n_tiles):
        n, mask = _tile(row0, t, row_end, col_mask, R)
        g = tl.load(_at(g_base, n, sgn, g_off), mask=mask, other=0.).to(ACC)
        v = tl.load(_at(x_base, n, sxn, x_off), mask=mask, other=0.).to(ACC)
        dx = (g - mean_g - (v - mean) * proj) * coef
        tl.store(_at(d_base, n, sdn, d_off),
                 dx.to(dx_ptr.dtype.element_ty), mask=mask)


# True when TRITON_INTERPRET=1 was set at import: the kernels then run on CPU
# tensors through Triton's interpreter (slow; for tests and debugging)
INTERPRETED = not isinstance(_bn_stats_kernel, triton.runtime.JITFunction)


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


@functools.lru_cache(maxsize=None)
def _min_programs(device: torch.device) -> int:
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        return _MIN_WAVES * props.multi_processor_count
    # the interpreter: a few blocks per channel, so that tests merge partials
    return 16


@functools.lru_cache(maxsize=None)
def _config(n: int, c: int, hw: int, min_programs: int, max_cols: int,
            tile: int, target: int):
    """(rows per tile R, columns per block B, rows per block RB, column
    blocks, blocks per channel P, tiles per block)."""
    cols = min(_next_pow2(hw), max_cols)
    n_hb = -(-hw // cols)
    rows = max(1, min(tile // cols, _next_pow2(n)))
    block_rows = rows * max(1, target // (rows * cols))
    # fewer rows per block while the grid would be too small to fill the GPU
    while block_rows > 1 and c * n_hb * -(-n // block_rows) < min_programs:
        block_rows //= 2
        rows = min(rows, block_rows)
    n_rb = -(-n // block_rows)
    return rows, cols, block_rows, n_hb, n_rb * n_hb, -(-block_rows // rows)


def _num_warps(tile: int) -> int:
    # 16 elements per thread at the full tile; fewer warps for the small
    # tiles of small batches
    return max(1, min(8, tile // 512))


def _launch_config(x: torch.Tensor):
    n, c, h, w = x.shape
    return _config(n, c, h * w, _min_programs(x.device), _MAX_COLS, _TILE,
                   _TARGET)


def _flat_strides(t: torch.Tensor):
    """(sample, channel, position) strides of ``t`` with H and W flattened
    into one position index; None when they cannot be (a strided view)."""
    sn, sc, sh, sw = t.stride()
    h, w = t.shape[2:]
    if h == 1:
        return sn, sc, sw
    if w == 1:
        return sn, sc, sh
    if sh == w * sw:
        return sn, sc, sw
    return None


def flattenable(t: torch.Tensor) -> torch.Tensor:
    """``t``, or a contiguous copy when its H and W cannot be flattened into
    one strided index (NCHW-contiguous and channels-last maps can)."""
    return t if _flat_strides(t) is not None else t.contiguous()


def output_like(x: torch.Tensor) -> torch.Tensor:
    """An empty tensor of ``x``'s shape, dtype and memory format (also used
    by the fake implementation, so strides agree)."""
    fmt = (torch.channels_last
           if x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1
           and not x.is_contiguous() else torch.contiguous_format)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device,
                       memory_format=fmt)


def _new_stats(x: torch.Tensor, running: Optional[torch.Tensor]):
    if running is None:
        return x.new_empty((0, ), dtype=_acc_dtype(x.dtype))
    return torch.empty_like(running, memory_format=torch.contiguous_format)


def _launch_fwd(x, weight, bias, running_mean, running_var, new_mean,
                new_var, momentum: float, eps: float):
    """Both forward kernels: ``(y, mean, rstd)``; the updated running
    statistics go to ``new_mean`` / ``new_var`` (the running buffers
    themselves for an in-place update: each channel's first program reads
    its running value before it writes the new one)."""
    n, c, h, w = x.shape
    acc = _acc_dtype(x.dtype)
    y = output_like(x)
    mean = x.new_empty((c, ), dtype=acc)
    rstd = x.new_empty((c, ), dtype=acc)
    rows, cols, block_rows, n_hb, parts, n_tiles = _launch_config(x)
    part = x.new_empty((3, c * parts), dtype=acc)
    track = running_mean is not None and running_var is not None
    grid = (c * parts, )
    strides = _flat_strides(x)
    common = dict(R=rows, B=cols, ACC=_acc(x.dtype),
                  num_warps=_num_warps(rows * cols))
    _bn_stats_kernel[grid](x, part, n, h * w, *strides, block_rows, n_hb,
                           parts, n_tiles, **common)
    _bn_fwd_kernel[grid](
        x, y, part, x if weight is None else weight,
        x if bias is None else bias, running_mean if track else x,
        running_var if track else x, new_mean if track else x,
        new_var if track else x, mean, rstd, n, h * w, *strides,
        *_flat_strides(y), block_rows, n_hb, parts, n_tiles, momentum, eps,
        HAS_W=weight is not None, HAS_B=bias is not None, TRACK=track,
        PB=_PART_BLOCK, **common)
    return y, mean, rstd


def _launch_bwd(grad: torch.Tensor, x: torch.Tensor, mean: torch.Tensor,
                rstd: torch.Tensor, weight: Optional[torch.Tensor],
                param_dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both backward kernels: ``(dx, d weight, d bias)``."""
    n, c, h, w = x.shape
    grad = flattenable(grad)
    acc = _acc_dtype(x.dtype)
    dx = output_like(x)
    dw = x.new_empty((c, ), dtype=param_dtype)
    db = x.new_empty((c, ), dtype=param_dtype)
    rows, cols, block_rows, n_hb, parts, n_tiles = _launch_config(x)
    part = x.new_empty((2, c * parts), dtype=acc)
    grid = (c * parts, )
    g_strides, x_strides = _flat_strides(grad), _flat_strides(x)
    common = dict(R=rows, B=cols, ACC=_acc(x.dtype),
                  num_warps=_num_warps(rows * cols))
    _bn_bwd_sums_kernel[grid](grad, x, mean, part, n, h * w, *g_strides,
                              *x_strides, block_rows, n_hb, parts, n_tiles,
                              **common)
    _bn_bwd_dx_kernel[grid](
        grad, x, dx, mean, rstd, x if weight is None else weight, part, dw,
        db, n, h * w, *g_strides, *x_strides, *_flat_strides(dx),
        block_rows, n_hb, parts, n_tiles, float(n * h * w),
        HAS_W=weight is not None, PB=_PART_BLOCK, **common)
    return dx, dw, db


# What torch.compile and export see: functional ops (the updated running
# statistics are outputs, copied into the buffers by the caller), with fake
# implementations and autograd.
@torch.library.custom_op('mmtinyvim::batch_norm_train_fwd', mutates_args=())
def _bn_fwd(x: torch.Tensor, weight: Optional[torch.Tensor],
            bias: Optional[torch.Tensor],
            running_mean: Optional[torch.Tensor],
            running_var: Optional[torch.Tensor], momentum: float,
            eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                 torch.Tensor, torch.Tensor]:
    new_mean = _new_stats(x, running_mean)
    new_var = _new_stats(x, running_var)
    y, mean, rstd = _launch_fwd(x, weight, bias, running_mean, running_var,
                                new_mean, new_var, momentum, eps)
    return y, mean, rstd, new_mean, new_var


@_bn_fwd.register_fake
def _(x, weight, bias, running_mean, running_var, momentum, eps):
    acc = _acc_dtype(x.dtype)
    c = x.shape[1]
    return (output_like(x), x.new_empty((c, ), dtype=acc),
            x.new_empty((c, ), dtype=acc), _new_stats(x, running_mean),
            _new_stats(x, running_var))


_bn_bwd = torch.library.custom_op('mmtinyvim::batch_norm_train_bwd',
                                  _launch_bwd, mutates_args=())


@_bn_bwd.register_fake
def _(grad, x, mean, rstd, weight, param_dtype):
    c = x.shape[1]
    return (output_like(x), x.new_empty((c, ), dtype=param_dtype),
            x.new_empty((c, ), dtype=param_dtype))


def _setup_context(ctx, inputs, output):
    # output: (y, mean, rstd) and, from the custom op, the new statistics
    x, weight, bias, _, _, _, _ = inputs
    mean, rstd = output[1:3]
    ctx.mark_non_differentiable(*output[1:])
    ctx.save_for_backward(x, mean, rstd, weight)
    ctx.has_bias = bias is not None
    ctx.param_dtype = (weight if weight is not None else
                       bias if bias is not None else mean).dtype


def _gradients(ctx, grad, backward_kernels):
    x, mean, rstd, weight = ctx.saved_tensors
    dx, dw, db = backward_kernels(grad, x, mean, rstd, weight,
                                  ctx.param_dtype)
    return (dx, dw if weight is not None else None,
            db if ctx.has_bias else None, None, None, None, None)


_bn_fwd.register_autograd(
    lambda ctx, grad, *_: _gradients(ctx, grad, _bn_bwd),
    setup_context=_setup_context)


class _BatchNormTrain(torch.autograd.Function):
    """The eager form of the op: the same kernels, called directly (no
    custom-op dispatch, which costs more host time per call than the four
    launches), the running statistics updated in place."""

    # forward(ctx, ...), not a separate setup_context: with one, every
    # apply() binds its arguments through inspect.signature
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum,
                eps):
        output = _launch_fwd(x, weight, bias, running_mean, running_var,
                             running_mean, running_var, momentum, eps)
        _setup_context(ctx, (x, weight, bias, running_mean, running_var,
                             momentum, eps), output)
        return output

    @staticmethod
    def backward(ctx, grad, *_):
        return _gradients(ctx, grad, _launch_bwd)


def batch_norm_train_triton(x: torch.Tensor, weight: Optional[torch.Tensor],
                            bias: Optional[torch.Tensor],
                            running_mean: Optional[torch.Tensor],
                            running_var: Optional[torch.Tensor],
                            momentum: float, eps: float) -> torch.Tensor:
    """Training-mode batch norm of a (N, C, H, W) map in two launches
    (inputs checked by the caller, :func:`mmtinyvim.ops.batchnorm.
    batch_norm_train`); updates the running statistics in place. Under
    ``torch.compile`` the custom op (one graph node), else its eager form
    (see :mod:`mmtinyvim.ops._triton`)."""
    x, momentum, eps = flattenable(x), float(momentum), float(eps)
    if not torch.compiler.is_compiling():
        return _BatchNormTrain.apply(x, weight, bias, running_mean,
                                     running_var, momentum, eps)[0]
    y, _, _, new_mean, new_var = _bn_fwd(x, weight, bias, running_mean,
                                         running_var, momentum, eps)
    if running_mean is not None:
        torch._foreach_copy_([running_mean, running_var],
                             [new_mean, new_var])
    return y
