"""MobileMamba's one-level Haar transforms as Triton kernels, forward and
backward, with the WTE-Mamba element-wise work around them fused in.

With ``a b / c d`` the 2x2 block of an input pixel pair-of-rows, the four
sub-bands of a channel (order of :mod:`mmtinyvim.models.wavelet`) are

    0: (a + b + c + d) / 2     1: (a + b - c - d) / 2
    2: (a - b + c - d) / 2     3: (a - b - c + d) / 2

and the synthesis is the same matrix (orthonormal and symmetric), so each
transform's backward is the other one:

* analysis  ``bands = A(pad(x))``, cast to the caller's dtype;
  backward  ``d x = crop(A^T(d bands))``: the synthesis kernel;
* synthesis ``out = residual * residual_scale
  + crop(A^T(bands * band_scale))`` (WTE-Mamba's output: the scaled scan
  branch plus the scaled wavelet branch; both scales optional);
  backward  ``d bands = band_scale * A(pad(g))``, ``d residual =
  residual_scale * g`` and the two scales' gradients, reduced per program
  over its pixels into a (programs, channels) buffer that torch sums (no
  atomics: deterministic): the analysis kernel.

A program owns a (channels, half-resolution pixels) tile; the pixels of all
samples are numbered together, so batch 1 and large batches tile alike. Odd
H/W: the missing row/column reads as zero (the reference's zero padding)
and is not written (its crop). Values are computed in float32 (float64 for
float64 inputs), in the reference's order of sums, and rounded once.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

# elements of one (channels x pixels) tile
_TILE = 1024
# sizes and outer strides are not specialised on (divisibility by 16 buys
# these gather-style loads nothing): one compilation serves every stage
# shape, only the innermost strides (1, or the channel count) are
_SIZES = ['C', 'n_pixels', 'h', 'w', 'H', 'W']


@triton.jit
def _tile(C, n_pixels, h, w, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    # pixel blocks on grid axis 0, whose size is not limited to 65535
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    b = p // (h * w)
    rest = p % (h * w)
    i = rest // w
    j = rest % w
    mask = (c < C)[:, None] & (p < n_pixels)[None, :]
    return c, b.to(tl.int64), i, j, mask


@triton.jit(do_not_specialize=_SIZES + [
    'sxb', 'sxc', 'sxh', 'sob', 'soc', 'sok', 'soh', 'srb', 'src', 'srk',
    'srh', 'sqb', 'sqc', 'sqh', 'sgb', 'sgc', 'sgh'])
def _analysis_kernel(
        x_ptr, out_ptr, scale_ptr, ref_ptr, part_ptr, res_ptr, rscale_ptr,
        gres_ptr, rpart_ptr, C, n_pixels, h, w, H, W,
        sxb, sxc, sxh, sxw, sob, soc, sok, soh, sow,
        srb, src, srk, srh, srw, sqb, sqc, sqh, sqw, sgb, sgc, sgh, sgw,
        SCALE: tl.constexpr, PARTIAL: tl.constexpr, RESIDUAL: tl.constexpr,
        ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    c, b, i, j, mask = _tile(C, n_pixels, h, w, BLOCK_C, BLOCK_P)
    c64 = c.to(tl.int64)[:, None]
    row0 = (2 * i).to(tl.int64)[None, :]
    col0 = (2 * j).to(tl.int64)[None, :]
    b2 = b[None, :]
    # the pad: a missing bottom row / right column reads as zero
    m_b = mask & (2 * j + 1 < W)[None, :]
    m_c = mask & (2 * i + 1 < H)[None, :]
    m_d = m_b & m_c
    x = x_ptr + b2 * sxb + c64 * sxc + row0 * sxh + col0 * sxw
    xa = tl.load(x, mask=mask, other=0.).to(ACC)
    xb = tl.load(x + sxw, mask=m_b, other=0.).to(ACC)
    xc = tl.load(x + sxh, mask=m_c, other=0.).to(ACC)
    xd = tl.load(x + sxh + sxw, mask=m_d, other=0.).to(ACC)
    ac_s = xa + xc
    ac_d = xa - xc
    bd_s = xb + xd
    bd_d = xb - xd
    band0 = (ac_s + bd_s) * 0.5
    band1 = (ac_d + bd_d) * 0.5
    band2 = (ac_s - bd_s) * 0.5
    band3 = (ac_d - bd_d) * 0.5

    pix = (b2 * sob + c64 * soc + i.to(tl.int64)[None, :] * soh +
           j.to(tl.int64)[None, :] * sow)
    if PARTIAL:
        # d band_scale: sum over pixels of A(g) * the forward's bands
        ref = (ref_ptr + b2 * srb + c64 * src + i.to(tl.int64)[None, :] * srh
               + j.to(tl.int64)[None, :] * srw)
        part = part_ptr + tl.program_id(0).to(tl.int64) * 4 * C + 4 * c
        cmask = c < C
        r0 = tl.load(ref, mask=mask, other=0.).to(ACC)
        tl.store(part, tl.sum(band0 * r0, 1), mask=cmask)
        r1 = tl.load(ref + srk, mask=mask, other=0.).to(ACC)
        tl.store(part + 1, tl.sum(band1 * r1, 1), mask=cmask)
        r2 = tl.load(ref + 2 * srk, mask=mask, other=0.).to(ACC)
        tl.store(part + 2, tl.sum(band2 * r2, 1), mask=cmask)
        r3 = tl.load(ref + 3 * srk, mask=mask, other=0.).to(ACC)
        tl.store(part + 3, tl.sum(band3 * r3, 1), mask=cmask)
    if SCALE:
        s = scale_ptr + 4 * c
        cmask = c < C
        band0 = band0 * tl.load(s, mask=cmask, other=0.).to(ACC)[:, None]
        band1 = band1 * tl.load(s + 1, mask=cmask, other=0.).to(ACC)[:, None]
        band2 = band2 * tl.load(s + 2, mask=cmask, other=0.).to(ACC)[:, None]
        band3 = band3 * tl.load(s + 3, mask=cmask, other=0.).to(ACC)[:, None]
    out = out_ptr + pix
    dtype = out_ptr.dtype.element_ty
    tl.store(out, band0.to(dtype), mask=mask)
    tl.store(out + sok, band1.to(dtype), mask=mask)
    tl.store(out + 2 * sok, band2.to(dtype), mask=mask)
    tl.store(out + 3 * sok, band3.to(dtype), mask=mask)

    if RESIDUAL:
        # d residual = residual_scale * g, d residual_scale = sum(g * res)
        q = res_ptr + b2 * sqb + c64 * sqc + row0 * sqh + col0 * sqw
        qa = tl.load(q, mask=mask, other=0.).to(ACC)
        qb = tl.load(q + sqw, mask=m_b, other=0.).to(ACC)
        qc = tl.load(q + sqh, mask=m_c, other=0.).to(ACC)
        qd = tl.load(q + sqh + sqw, mask=m_d, other=0.).to(ACC)
        rpart = tl.sum(xa * qa + xb * qb + xc * qc + xd * qd, 1)
        cmask = c < C
        tl.store(rpart_ptr + tl.program_id(0).to(tl.int64) * C + c, rpart,
                 mask=cmask)
        rs = tl.load(rscale_ptr + c, mask=cmask, other=0.).to(ACC)[:, None]
        g = gres_ptr + b2 * sgb + c64 * sgc + row0 * sgh + col0 * sgw
        gty = gres_ptr.dtype.element_ty
        tl.store(g, (xa * rs).to(gty), mask=mask)
        tl.store(g + sgw, (xb * rs).to(gty), mask=m_b)
        tl.store(g + sgh, (xc * rs).to(gty), mask=m_c)
        tl.store(g + sgh + sgw, (xd * rs).to(gty), mask=m_d)


@triton.jit(do_not_specialize=_SIZES + [
    'sbb', 'sbc', 'sbk', 'sbh', 'sqb', 'sqc', 'sqh', 'sob', 'soc', 'soh'])
def _synthesis_kernel(
        bands_ptr, scale_ptr, res_ptr, rscale_ptr, out_ptr, C, n_pixels, h,
        w, H, W, sbb, sbc, sbk, sbh, sbw, sqb, sqc, sqh, sqw, sob, soc, soh,
        sow, SCALE: tl.constexpr, RESIDUAL: tl.constexpr,
        RSCALE: tl.constexpr, DETAIL: tl.constexpr, ACC: tl.constexpr,
        BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    c, b, i, j, mask = _tile(C, n_pixels, h, w, BLOCK_C, BLOCK_P)
    c64 = c.to(tl.int64)[:, None]
    b2 = b[None, :]
    band = (bands_ptr + b2 * sbb + c64 * sbc + i.to(tl.int64)[None, :] * sbh
            + j.to(tl.int64)[None, :] * sbw)
    k0 = tl.load(band, mask=mask, other=0.).to(ACC)
    k1 = tl.load(band + sbk, mask=mask, other=0.).to(ACC)
    k2 = tl.load(band + 2 * sbk, mask=mask, other=0.).to(ACC)
    k3 = tl.load(band + 3 * sbk, mask=mask, other=0.).to(ACC)
    if SCALE:
        s = scale_ptr + 4 * c
        cmask = c < C
        k0 = k0 * tl.load(s, mask=cmask, other=0.).to(ACC)[:, None]
        k1 = k1 * tl.load(s + 1, mask=cmask, other=0.).to(ACC)[:, None]
        k2 = k2 * tl.load(s + 2, mask=cmask, other=0.).to(ACC)[:, None]
        k3 = k3 * tl.load(s + 3, mask=cmask, other=0.).to(ACC)[:, None]
    # the reference's order: undo W (band pairs), then H
    low_h0 = k0 + k2
    low_h1 = k0 - k2
    high_h0 = k1 + k3
    high_h1 = k1 - k3
    xa = (low_h0 + high_h0) * 0.5
    xb = (low_h1 + high_h1) * 0.5
    xc = (low_h0 - high_h0) * 0.5
    xd = (low_h1 - high_h1) * 0.5
    row0 = (2 * i).to(tl.int64)[None, :]
    col0 = (2 * j).to(tl.int64)[None, :]
    # the crop: a padded bottom row / right column is not written
    m_b = mask & (2 * j + 1 < W)[None, :]
    m_c = mask & (2 * i + 1 < H)[None, :]
    m_d = m_b & m_c
    if RESIDUAL:
        # the reference rounds the wavelet branch to the module's dtype
        # before it adds the scaled scan branch
        xa = xa.to(DETAIL).to(ACC)
        xb = xb.to(DETAIL).to(ACC)
        xc = xc.to(DETAIL).to(ACC)
        xd = xd.to(DETAIL).to(ACC)
        q = res_ptr + b2 * sqb + c64 * sqc + row0 * sqh + col0 * sqw
        qa = tl.load(q, mask=mask, other=0.).to(ACC)
        qb = tl.load(q + sqw, mask=m_b, other=0.).to(ACC)
        qc = tl.load(q + sqh, mask=m_c, other=0.).to(ACC)
        qd = tl.load(q + sqh + sqw, mask=m_d, other=0.).to(ACC)
        if RSCALE:
            rs = tl.load(rscale_ptr + c, mask=c < C, other=0.).to(ACC)[:, None]
            qa = qa * rs
            qb = qb * rs
            qc = qc * rs
            qd = qd * rs
        xa = qa + xa
        xb = qb + xb
        xc = qc + xc
        xd = qd + xd
    out = out_ptr + b2 * sob + c64 * soc + row0 * soh + col0 * sow
    dtype = out_ptr.dtype.element_ty
    tl.store(out, xa.to(dtype), mask=mask)
    tl.store(out + sow, xb.to(dtype), mask=m_b)
    tl.store(out + soh, xc.to(dtype), mask=m_c)
    tl.store(out + soh + sow, xd.to(dtype), mask=m_d)


# True when TRITON_INTERPRET=1 was set at import: the kernels then run on CPU
# tensors through Triton's interpreter (slow; for tests and debugging)
INTERPRETED = not isinstance(_analysis_kernel, triton.runtime.JITFunction)

_TL_DTYPES = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
              torch.float32: tl.float32, torch.float64: tl.float64}


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def channels_last(t: torch.Tensor) -> bool:
    """Whether the channel dim (1) is the innermost of a 4-D map, or of a
    (B, C, 4, h, w) band view (whose channel-and-band dims are)."""
    return t.stride(1) < t.stride(-1)


def _acc(*dtypes: torch.dtype):
    return tl.float64 if torch.float64 in dtypes else tl.float32


def _acc_torch(*dtypes: torch.dtype) -> torch.dtype:
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _blocks(channels: int, n_pixels: int, last: bool):
    """Tile shape: for channels-last maps the channels are contiguous, so a
    tile spans many of them; else the pixels of a row are."""
    block_c = min(_next_pow2(channels), 32 if last else 4)
    block_p = max(1, min(_TILE // block_c, _next_pow2(n_pixels)))
    return block_c, block_p


def _empty(shape, dtype, device, last: bool) -> torch.Tensor:
    fmt = torch.channels_last if last else torch.contiguous_format
    return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)


def half_size(height: int, width: int):
    return (height + 1) // 2, (width + 1) // 2


def analysis_out(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The analysis output (B, 4C, h, w), channels-last when ``x`` is
    (shared with the fake implementation so that strides agree)."""
    batch, channels, height, width = x.shape
    return _empty((batch, 4 * channels, *half_size(height, width)), dtype,
                  x.device, channels_last(x))


def synthesis_out(bands: torch.Tensor, residual: Optional[torch.Tensor],
                  height: int, width: int, dtype: torch.dtype
                  ) -> torch.Tensor:
    """The synthesis output (B, C, H, W), laid out as the residual (else the
    bands) is."""
    like = residual if residual is not None else bands
    return _empty((bands.shape[0], bands.shape[1], height, width), dtype,
                  bands.device, channels_last(like))


def _s(t: Optional[torch.Tensor], dims: int):
    return tuple(t.stride()) if t is not None else (0, ) * dims


def launch_analysis(x, out, scale=None, ref=None, residual=None,
                    residual_scale=None, grad_residual=None):
    """Run the analysis kernel: ``out`` (B, C, 4, h, w view) = A(pad(x))
    (times ``scale``); with ``ref``, also returns the (programs, 4C)
    partial sums of A(x) * ref; with ``residual``, writes ``grad_residual =
    residual_scale * x`` and returns the (programs, C) partial sums of
    x * residual."""
    batch, channels, height, width = x.shape
    h, w = half_size(height, width)
    n_pixels = batch * h * w
    block_c, block_p = _blocks(channels, n_pixels, channels_last(x))
    grid = (triton.cdiv(n_pixels, block_p), triton.cdiv(channels, block_c))
    acc = _acc(x.dtype, out.dtype)
    part = rpart = None
    if ref is not None:
        part = x.new_empty((grid[0], 4 * channels),
                           dtype=_acc_torch(x.dtype, out.dtype))
    if residual is not None:
        rpart = x.new_empty((grid[0], channels),
                            dtype=_acc_torch(x.dtype, out.dtype))
    if n_pixels and channels:
        _analysis_kernel[grid](
            x, out, scale, ref, part, residual, residual_scale,
            grad_residual, rpart, channels, n_pixels, h, w, height, width,
            *x.stride(), *out.stride(), *_s(ref, 5), *_s(residual, 4),
            *_s(grad_residual, 4), SCALE=scale is not None,
            PARTIAL=ref is not None, RESIDUAL=residual is not None, ACC=acc,
            BLOCK_C=block_c, BLOCK_P=block_p, num_warps=4)
    elif part is not None or rpart is not None:
        for t in (part, rpart):
            if t is not None:
                t.zero_()
    return part, rpart


def launch_synthesis(bands, out, scale=None, residual=None,
                     residual_scale=None, detail_dtype=torch.float32):
    """Run the synthesis kernel: ``out`` (B, C, H, W) = residual *
    residual_scale + crop(A^T(bands * scale)), any of the three optional."""
    batch, channels, _, h, w = bands.shape
    height, width = out.shape[2:]
    n_pixels = batch * h * w
    if not (n_pixels and channels and height and width):
        return
    block_c, block_p = _blocks(channels, n_pixels, channels_last(out))
    grid = (triton.cdiv(n_pixels, block_p), triton.cdiv(channels, block_c))
    _synthesis_kernel[grid](
        bands, scale, residual, residual_scale, out, channels, n_pixels, h, w,
        height, width, *bands.stride(), *_s(residual, 4), *out.stride(),
        SCALE=scale is not None, RESIDUAL=residual is not None,
        RSCALE=residual_scale is not None, DETAIL=_TL_DTYPES[detail_dtype],
        ACC=_acc(bands.dtype, out.dtype), BLOCK_C=block_c, BLOCK_P=block_p,
        num_warps=4)


def _flat(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.reshape(-1).contiguous()


def _analysis_fwd(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The analysis of ``x`` as (B, 4C, h, w)."""
    out = analysis_out(x, dtype)
    launch_analysis(x, out.unflatten(1, (x.shape[1], 4)))
    return out


def _synthesis_fwd(bands: torch.Tensor, band_scale: Optional[torch.Tensor],
                   residual: Optional[torch.Tensor],
                   residual_scale: Optional[torch.Tensor], height: int,
                   width: int, dtype: torch.dtype,
                   detail_dtype: torch.dtype) -> torch.Tensor:
    """The synthesis, with the optional scales and residual."""
    out = synthesis_out(bands, residual, height, width, dtype)
    launch_synthesis(bands, out, _flat(band_scale), residual,
                     _flat(residual_scale), detail_dtype)
    return out


def _none_like(t: torch.Tensor) -> torch.Tensor:
    """The placeholder of a gradient that has no input (custom ops return
    tensors only)."""
    return t.new_empty((0, ))


def _synthesis_grads(grad: torch.Tensor, bands: torch.Tensor,
                     band_scale: Optional[torch.Tensor],
                     residual: Optional[torch.Tensor],
                     residual_scale: Optional[torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                torch.Tensor]:
    """The synthesis's backward (an analysis of ``grad``, with the partial
    sums of the scales' gradients): (d bands (B, 4C, h, w), d band_scale,
    d residual, d residual_scale), placeholders for absent inputs."""
    grad_bands = analysis_out(grad, bands.dtype)
    use_residual = residual is not None and residual_scale is not None
    grad_residual = (torch.empty_like(residual) if use_residual else
                     _none_like(grad))
    part, rpart = launch_analysis(
        grad, grad_bands.unflatten(1, (grad.shape[1], 4)), _flat(band_scale),
        bands if band_scale is not None else None,
        residual if use_residual else None, _flat(residual_scale),
        grad_residual if use_residual else None)
    grad_scale = (part.sum(0).reshape(band_scale.shape).to(band_scale.dtype)
                  if band_scale is not None else _none_like(grad))
    grad_rscale = (rpart.sum(0).reshape(residual_scale.shape)
                   .to(residual_scale.dtype) if use_residual else
                   _none_like(grad))
    return grad_bands, grad_scale, grad_residual, grad_rscale


# what torch.compile and export see (see mmtinyvim.ops._triton): custom ops
# with fake implementations and autograd
_analysis = torch.library.custom_op('mmtinyvim::haar_analysis', _analysis_fwd,
                                    mutates_args=())
_synthesis = torch.library.custom_op('mmtinyvim::haar_synthesis',
                                     _synthesis_fwd, mutates_args=())
_synthesis_bwd = torch.library.custom_op('mmtinyvim::haar_synthesis_bwd',
                                         _synthesis_grads, mutates_args=())


@_analysis.register_fake
def _(x, dtype):
    return analysis_out(x, dtype)


@_synthesis.register_fake
def _(bands, band_scale, residual, residual_scale, height, width, dtype,
      detail_dtype):
    return synthesis_out(bands, residual, height, width, dtype)


@_synthesis_bwd.register_fake
def _(grad, bands, band_scale, residual, residual_scale):
    use_residual = residual is not None and residual_scale is not None
    return (analysis_out(grad, bands.dtype),
            torch.empty_like(band_scale) if band_scale is not None else
            _none_like(grad),
            torch.empty_like(residual) if use_residual else _none_like(grad),
            torch.empty_like(residual_scale) if use_residual else
            _none_like(grad))


def _analysis_setup(ctx, inputs, output):
    x, _ = inputs
    ctx.meta = (x.shape[2], x.shape[3], x.dtype)


def _analysis_gradients(ctx, grad, synthesis):
    height, width, dtype = ctx.meta
    bands = grad.unflatten(1, (grad.shape[1] // 4, 4))
    return synthesis(bands, None, None, None, height, width, dtype,
                     dtype), None


_analysis.register_autograd(
    lambda ctx, grad: _analysis_gradients(ctx, grad, _synthesis),
    setup_context=_analysis_setup)


def _synthesis_setup(ctx, inputs, output):
    bands, band_scale, residual, residual_scale = inputs[:4]
    ctx.save_for_backward(bands, band_scale, residual, residual_scale)
    ctx.residual_dtype = None if residual is None else residual.dtype


def _synthesis_gradients(ctx, grad, synthesis_grads):
    bands, band_scale, residual, residual_scale = ctx.saved_tensors
    grad_bands, grad_scale, grad_residual, grad_rscale = synthesis_grads(
        grad, bands, band_scale, residual, residual_scale)
    grad_bands = grad_bands.unflatten(1, (bands.shape[1], 4))
    if residual is None:
        grad_residual = grad_rscale = None
    elif residual_scale is None:
        # d out / d residual is the identity: the incoming gradient
        grad_residual, grad_rscale = grad.to(ctx.residual_dtype), None
    return (grad_bands, grad_scale if band_scale is not None else None,
            grad_residual, grad_rscale, None, None, None, None)


_synthesis.register_autograd(
    lambda ctx, grad: _synthesis_gradients(ctx, grad, _synthesis_bwd),
    setup_context=_synthesis_setup)


# The eager forms: the same kernels, called directly. forward(ctx, ...), not
# a separate setup_context: with one, every apply() binds its arguments
# through inspect.signature.
class _Analysis(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, dtype):
        _analysis_setup(ctx, (x, dtype), None)
        return _analysis_fwd(x, dtype)

    @staticmethod
    def backward(ctx, grad):
        return _analysis_gradients(ctx, grad, _synthesis_fwd)


class _Synthesis(torch.autograd.Function):

    @staticmethod
    def forward(ctx, *inputs):
        _synthesis_setup(ctx, inputs, None)
        return _synthesis_fwd(*inputs)

    @staticmethod
    def backward(ctx, grad):
        return _synthesis_gradients(ctx, grad, _synthesis_grads)


def haar_analysis_triton(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, C, H, W) -> sub-bands (B, C, 4, ceil(H/2), ceil(W/2)) in
    ``dtype``, one launch (inputs checked by the caller); the custom op
    under ``torch.compile``, else its eager form."""
    if torch.compiler.is_compiling():
        out = _analysis(x, dtype)
    else:
        out = _Analysis.apply(x, dtype)
    return out.unflatten(1, (x.shape[1], 4))


def haar_synthesis_triton(bands: torch.Tensor,
                          band_scale: Optional[torch.Tensor],
                          residual: Optional[torch.Tensor],
                          residual_scale: Optional[torch.Tensor],
                          height: int, width: int, dtype: torch.dtype,
                          detail_dtype: torch.dtype) -> torch.Tensor:
    """``residual * residual_scale + crop(A^T(bands * band_scale))`` in
    ``dtype``, the wavelet branch rounded to ``detail_dtype`` first, one
    launch (inputs checked by the caller); the custom op under
    ``torch.compile``, else its eager form."""
    args = (bands, band_scale, residual, residual_scale, int(height),
            int(width), dtype, detail_dtype)
    if torch.compiler.is_compiling():
        return _synthesis(*args)
    return _Synthesis.apply(*args)
