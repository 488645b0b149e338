"""The Laplace mixer's tail in one Triton kernel, forward and backward.

    out = bilinear_up(y, p) + low - nearest_up(pooled)
    pooled = avg_pool(low, p)

The work is split into *cells*: one cell is one pixel of the pooled grid of
one (sample, channel), i.e. a p x p block of ``low``/``out``. A program owns
``BLOCK`` cells; its tile is (cells, pixels of a cell). The forward pass
reads each ``low`` block and the cell's ``pooled`` value once and writes
``out`` once; the four bilinear neighbours of an output pixel are gathered
from ``y``, which is p^2 times smaller and stays in cache.

Backward, with g = d loss / d out:

    d y      = bilinear_up^T(g):  per cell, the weighted sum of g over the
               output pixels whose bilinear stencil touches it (2p x 2p of
               them, gathered, so no atomics and a deterministic sum). The
               weights are separable: a program walks the stencil's rows,
               loading one row of the stencils of all its cells at a time
               (contiguous, as neighbouring cells share their pixels) and
               accumulating it times the row's weight; the column weights
               are applied once at the end. d pooled comes from the same
               loads;
    d pooled = -(sum of g over the cell's own block);
    d low    = g itself (no kernel).

Bilinear weights are torch's for ``scale_factor=p, align_corners=False``
(half-pixel centres, the source index clamped at 0, the upper neighbour
clamped at the last row/column), computed with the same expressions and in
the same order as ``upsample_bilinear2d``'s CUDA kernel; values are
accumulated in float32 (float64 for float64 inputs) and rounded once.

Any strides are accepted (the mixer passes channel-split views and the
permuted scan output); cells are numbered channel-fastest for channels-last
maps so that a tile's loads stay contiguous.
"""
import torch
import triton
import triton.language as tl

# elements of one tile (cells x pixels of a cell, or of its 2p x 2p stencil)
_TILE = 2048


@triton.jit
def _cell_coords(cell, C, h, w, CHANNELS_LAST: tl.constexpr):
    """(sample, channel, row, column) of each cell on the pooled grid."""
    if CHANNELS_LAST:
        c = cell % C
        rest = cell // C
        j = rest % w
        rest = rest // w
        i = rest % h
        b = rest // h
    else:
        j = cell % w
        rest = cell // w
        i = rest % h
        rest = rest // h
        c = rest % C
        b = rest // C
    return b.to(tl.int64), c.to(tl.int64), i, j


@triton.jit
def _bilinear_source(dst, in_size, P: tl.constexpr, ACC: tl.constexpr):
    """torch's align_corners=False source of output index ``dst`` for
    scale factor P: lower/upper input index and their weights."""
    # 1/P rounded once to ACC, as torch's accscalar_t scale is
    scale = tl.full([], 1.0 / P, ACC)
    src = scale * (dst.to(ACC) + 0.5) - 0.5
    src = tl.where(src < 0, 0.0, src)
    lo = src.to(tl.int32)  # truncation is floor: src >= 0
    hi = lo + (lo < in_size - 1).to(tl.int32)
    w_hi = src - lo.to(ACC)
    w_lo = 1.0 - w_hi
    return lo, hi, w_lo, w_hi


# the sizes are not specialised on (nothing vectorises on them): fewer
# compilations over the stage and batch shapes
@triton.jit(do_not_specialize=['n_cells', 'C', 'h', 'w'])
def _laplace_fwd_kernel(y_ptr, low_ptr, pooled_ptr, out_ptr, n_cells, C, h,
                        w, syb, syc, syh, syw, slb, slc, slh, slw, spb, spc,
                        sph, spw, sob, soc, soh, sow, P: tl.constexpr,
                        PP: tl.constexpr, CHANNELS_LAST: tl.constexpr,
                        ACC: tl.constexpr, BLOCK: tl.constexpr):
    cell = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cell_mask = cell < n_cells
    b, c, i, j = _cell_coords(cell, C, h, w, CHANNELS_LAST)
    k = tl.arange(0, PP)
    r = k // P
    q = k % P
    mask = cell_mask[:, None] & (k < P * P)[None, :]
    row = i[:, None] * P + r[None, :]  # output pixel
    col = j[:, None] * P + q[None, :]

    low_base = b * slb + c * slc + (i * P).to(tl.int64) * slh + \
        (j * P).to(tl.int64) * slw
    low = tl.load(low_ptr + low_base[:, None] + (r * slh + q * slw)[None, :],
                  mask=mask, other=0.).to(ACC)
    pooled = tl.load(pooled_ptr + b * spb + c * spc + i * sph + j * spw,
                     mask=cell_mask, other=0.).to(ACC)

    h0, h1, lh0, lh1 = _bilinear_source(row, h, P, ACC)
    w0, w1, lw0, lw1 = _bilinear_source(col, w, P, ACC)
    y_cell = y_ptr + (b * syb + c * syc)[:, None]
    y00 = tl.load(y_cell + h0 * syh + w0 * syw, mask=mask, other=0.).to(ACC)
    y01 = tl.load(y_cell + h0 * syh + w1 * syw, mask=mask, other=0.).to(ACC)
    y10 = tl.load(y_cell + h1 * syh + w0 * syw, mask=mask, other=0.).to(ACC)
    y11 = tl.load(y_cell + h1 * syh + w1 * syw, mask=mask, other=0.).to(ACC)
    up = lh0 * (lw0 * y00 + lw1 * y01) + lh1 * (lw0 * y10 + lw1 * y11)
    # the composition's order: up + (low - nearest_up(pooled))
    out = up + (low - pooled[:, None])

    out_base = b * sob + c * soc + (i * P).to(tl.int64) * soh + \
        (j * P).to(tl.int64) * sow
    tl.store(out_ptr + out_base[:, None] + (r * soh + q * sow)[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=['n_cells', 'C', 'h', 'w', 'H', 'W'])
def _laplace_bwd_kernel(g_ptr, gy_ptr, gp_ptr, n_cells, C, h, w, H, W, sgb,
                        sgc, sgh, sgw, syb, syc, syh, syw, spb, spc, sph, spw,
                        P: tl.constexpr, S: tl.constexpr, R: tl.constexpr,
                        RPAD: tl.constexpr, CHANNELS_LAST: tl.constexpr,
                        ACC: tl.constexpr, BLOCK: tl.constexpr):
    cell = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cell_mask = cell < n_cells
    b, c, i, j = _cell_coords(cell, C, h, w, CHANNELS_LAST)
    # the stencil's columns [j*P - S, j*P - S + R): their bilinear weights
    # towards the cell, computed once; its rows are walked one at a time
    e = tl.arange(0, RPAD)
    col = j[:, None] * P - S + e[None, :]
    col_mask = (cell_mask[:, None] & (e < R)[None, :] & (col >= 0) &
                (col < W))
    w0, w1, lw0, lw1 = _bilinear_source(col, w, P, ACC)
    jj = j[:, None]
    weight_col = tl.where(w0 == jj, lw0, 0.) + tl.where(w1 == jj, lw1, 0.)
    own_col = ((e >= S) & (e < S + P))[None, :]
    g_lane = g_ptr + (b * sgb + c * sgc)[:, None] + col.to(tl.int64) * sgw
    # per lane: sum over rows of (row weight x the row's stencil columns),
    # and the plain sum of the cell's own rows
    acc = tl.zeros([BLOCK, RPAD], dtype=ACC)
    own = tl.zeros([BLOCK, RPAD], dtype=ACC)
    for r in tl.static_range(R):
        row = i * P - S + r
        h0, h1, lh0, lh1 = _bilinear_source(row, h, P, ACC)
        weight_row = tl.where(h0 == i, lh0, 0.) + tl.where(h1 == i, lh1, 0.)
        mask = col_mask & ((row >= 0) & (row < H))[:, None]
        g = tl.load(g_lane + (row.to(tl.int64) * sgh)[:, None], mask=mask,
                    other=0.).to(ACC)
        acc += weight_row[:, None] * g
        if r >= S:  # compile-time: r, S and P are constexprs
            if r < S + P:
                own += g
    grad_y = tl.sum(acc * weight_col, 1)
    grad_pooled = -tl.sum(tl.where(own_col, own, 0.), 1)

    tl.store(gy_ptr + b * syb + c * syc + i * syh + j * syw,
             grad_y.to(gy_ptr.dtype.element_ty), mask=cell_mask)
    tl.store(gp_ptr + b * spb + c * spc + i * sph + j * spw,
             grad_pooled.to(gp_ptr.dtype.element_ty), mask=cell_mask)


# True when TRITON_INTERPRET=1 was set at import: the kernels then run on CPU
# tensors through Triton's interpreter (slow; for tests and debugging)
INTERPRETED = not isinstance(_laplace_fwd_kernel, triton.runtime.JITFunction)


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _channels_last(t: torch.Tensor) -> bool:
    return t.stride(1) < t.stride(3)


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _stencil(p: int):
    """Offset S and size R of the 2p x 2p output window whose bilinear
    weights reach one pooled pixel. For odd p a source index can land
    exactly on an integer, where float rounding decides the neighbour: one
    more row/column on each side keeps those (tiny-weight) terms."""
    if p % 2:
        return p - p // 2 + 1, 2 * p + 2
    return p - p // 2, 2 * p


def output_like(low: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The forward output: ``low``'s shape, channels-last when ``low`` is
    (also used by the fake implementation, so strides agree)."""
    fmt = (torch.channels_last if _channels_last(low) else
           torch.contiguous_format)
    return torch.empty(low.shape, dtype=dtype, device=low.device,
                       memory_format=fmt)


def _strides(t: torch.Tensor):
    return tuple(t.stride())


def _launch_fwd(y: torch.Tensor, low: torch.Tensor, pooled: torch.Tensor,
                p: int) -> torch.Tensor:
    """The forward kernel: the mixer's output."""
    dtype = torch.promote_types(torch.promote_types(y.dtype, low.dtype),
                                pooled.dtype)
    out = output_like(low, dtype)
    batch, channels, h, w = y.shape
    n_cells = batch * channels * h * w
    if n_cells == 0:
        return out
    pp = _next_pow2(p * p)
    block = max(1, min(_TILE // pp, _next_pow2(n_cells)))
    _laplace_fwd_kernel[(triton.cdiv(n_cells, block), )](
        y, low, pooled, out, n_cells, channels, h, w, *_strides(y),
        *_strides(low), *_strides(pooled), *_strides(out), P=p, PP=pp,
        CHANNELS_LAST=_channels_last(low), ACC=_acc(dtype), BLOCK=block,
        num_warps=4)
    return out


# what torch.compile and export see (see mmtinyvim.ops._triton): custom ops
# with fake implementations and autograd
_laplace_fwd = torch.library.custom_op('mmtinyvim::laplace_residual_fwd',
                                       _launch_fwd, mutates_args=())


@_laplace_fwd.register_fake
def _(y, low, pooled, p):
    dtype = torch.promote_types(torch.promote_types(y.dtype, low.dtype),
                                pooled.dtype)
    return output_like(low, dtype)


def _launch_bwd(grad: torch.Tensor, p: int, h: int, w: int,
                y_dtype: torch.dtype, pooled_dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward kernel: the gradients of ``y`` and ``pooled``."""
    batch, channels, height, width = grad.shape
    grad_y = grad.new_empty((batch, channels, h, w), dtype=y_dtype)
    grad_pooled = grad.new_empty((batch, channels, h, w), dtype=pooled_dtype)
    n_cells = batch * channels * h * w
    if n_cells == 0:
        return grad_y, grad_pooled
    offset, size = _stencil(p)
    pad = _next_pow2(size)
    # a tile is (cells, one row of their stencils): the rows are walked in
    # the kernel, so a program holds many cells even at large p
    block = max(1, min(_TILE // pad, _next_pow2(n_cells)))
    _laplace_bwd_kernel[(triton.cdiv(n_cells, block), )](
        grad, grad_y, grad_pooled, n_cells, channels, h, w, height, width,
        *_strides(grad), *_strides(grad_y), *_strides(grad_pooled), P=p,
        S=offset, R=size, RPAD=pad, CHANNELS_LAST=_channels_last(grad),
        ACC=_acc(grad.dtype), BLOCK=block, num_warps=4)
    return grad_y, grad_pooled


_laplace_bwd = torch.library.custom_op('mmtinyvim::laplace_residual_bwd',
                                       _launch_bwd, mutates_args=())


@_laplace_bwd.register_fake
def _(grad, p, h, w, y_dtype, pooled_dtype):
    shape = (grad.shape[0], grad.shape[1], h, w)
    return (grad.new_empty(shape, dtype=y_dtype),
            grad.new_empty(shape, dtype=pooled_dtype))


def _setup_context(ctx, inputs, output):
    y, low, pooled, p = inputs
    ctx.meta = (p, y.shape[2], y.shape[3], y.dtype, pooled.dtype, low.dtype)


def _gradients(ctx, grad, backward_kernel):
    p, h, w, y_dtype, pooled_dtype, low_dtype = ctx.meta
    grad_y, grad_pooled = backward_kernel(grad, p, h, w, y_dtype,
                                          pooled_dtype)
    # d out / d low is the identity: the incoming gradient, not a copy
    return grad_y, grad.to(low_dtype), grad_pooled, None


_laplace_fwd.register_autograd(
    lambda ctx, grad: _gradients(ctx, grad, _laplace_bwd),
    setup_context=_setup_context)


class _LaplaceResidual(torch.autograd.Function):
    """The eager form: the same kernels, called directly (forward(ctx, ...):
    a separate setup_context makes every apply() bind its arguments through
    inspect.signature)."""

    @staticmethod
    def forward(ctx, y, low, pooled, p):
        _setup_context(ctx, (y, low, pooled, p), None)
        return _launch_fwd(y, low, pooled, p)

    @staticmethod
    def backward(ctx, grad):
        return _gradients(ctx, grad, _launch_bwd)


def laplace_upsample_residual_triton(y: torch.Tensor, low: torch.Tensor,
                                     pooled: torch.Tensor,
                                     p: int) -> torch.Tensor:
    """``bilinear_up(y, p) + low - nearest_up(pooled, p)`` in one launch
    (shapes checked by the caller,
    :func:`mmtinyvim.ops.laplace_upsample_residual`); the custom op under
    ``torch.compile``, else its eager form."""
    if torch.compiler.is_compiling():
        return _laplace_fwd(y, low, pooled, int(p))
    return _LaplaceResidual.apply(y, low, pooled, int(p))
