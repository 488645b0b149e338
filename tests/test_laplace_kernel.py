"""The fused Laplace-mixer tail (Triton) against the torch composition.

On a CUDA machine the compiled kernels run on the GPU at the shapes the
TinyViM variants produce; without CUDA the same kernels run on CPU tensors
through Triton's interpreter (:func:`tests.triton_testing.import_kernels`),
on small shapes. Run this file in its own pytest process (scripts/test.sh),
like tests/test_scan_triton.py.
"""
import importlib

import pytest
import torch
import torch.nn.functional as F

from tests.triton_testing import CUDA, DEVICE, check_forms, import_kernels

lk = import_kernels('laplace')
lp = importlib.import_module('mmtinyvim.ops.laplace')
tinyvim = importlib.import_module('mmtinyvim.models.backbones.tinyvim')


FACTORS = sorted(p for p in tinyvim.POOL_FACTORS if p > 1)


def make(batch, channels, h, w, p, dtype=torch.float64, layout='plain',
         seed=0):
    """(y, low, pooled) as the mixer has them: ``low`` a channel-split view
    (or a channels-last one), ``y`` the permuted (channels-last strided) scan
    output, ``pooled = avg_pool2d(low)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels + 3, h * p, w * p, generator=g)
    y = torch.randn(batch, h, w, channels, generator=g)
    x, y = x.to(DEVICE, dtype), y.to(DEVICE, dtype)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    low = x[:, :channels].detach().requires_grad_()
    y = y.permute(0, 3, 1, 2).detach().requires_grad_()
    return y, low


def run(fn, y, low, p, grad=None):
    pooled = F.avg_pool2d(low, p)
    out = fn(y, low, p, pooled=pooled)
    if grad is None:
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(
            1)).to(out)
    grads = torch.autograd.grad(out, (y, low), grad)
    return out, grads, grad


def fused(y, low, p, pooled=None):
    return lp.laplace_upsample_residual(y, low, p, pooled=pooled,
                                        backend='triton')


def reference(y, low, p, pooled=None):
    return lp.laplace_upsample_residual_reference(y, low, p, pooled)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def compare(shape, p, dtype, layout='plain', tol=None):
    y, low = make(*shape, p, dtype=dtype, layout=layout)
    out, grads, grad = run(fused, y, low, p)
    ref, ref_grads, _ = run(reference, y, low, p, grad)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    errs = [rel(out, ref)] + [rel(a, b) for a, b in zip(grads, ref_grads)]
    assert [g.dtype for g in grads] == [y.dtype, low.dtype]
    print(f'\nlaplace {shape} p={p} {dtype} {layout} on {DEVICE.type}: '
          'max|d|/max|ref| out, dy, dlow = ' +
          ', '.join(f'{e:.1e}' for e in errs))
    assert max(errs) < tol, errs
    return out


# ----------------------------------------------------- any device (small) --

# (batch, channels, pooled h, pooled w): odd and non-square grids, batch 1,
# a single row/column (every bilinear neighbour clamped)
SMALL = [(1, 2, 3, 5), (2, 3, 4, 3), (1, 1, 1, 4), (1, 2, 5, 1)]


@pytest.mark.parametrize('p', FACTORS + [3])
@pytest.mark.parametrize('shape', SMALL)
def test_float64_forward_backward_match_reference(shape, p):
    compare(shape, p, torch.float64, tol=1e-12)


@pytest.mark.parametrize('p', FACTORS)
def test_channels_last_maps(p):
    compare((2, 3, 3, 2), p, torch.float64, 'channels_last', tol=1e-12)


@pytest.mark.parametrize('p', FACTORS + [3])
def test_float32_matches_torch_bilinear(p):
    # float32 source indices and weights as torch rounds them (1/p in
    # float32 is inexact for p = 3)
    compare((1, 2, 5, 3), p, torch.float32, tol=2e-6)


def test_gradcheck_float64():
    y, low = make(1, 2, 2, 3, 2)
    pooled = F.avg_pool2d(low, 2).detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b, c: fused(a, b, 2, pooled=c), (y, low, pooled))


def test_half_inputs_accumulate_in_float32():
    y, low = make(2, 3, 3, 5, 4, dtype=torch.float16)
    out = fused(y, low, 4)
    assert out.dtype == torch.float16
    exact = reference(y.double(), low.double(), 4)
    half = reference(y, low, 4)
    err, err_half = rel(out, exact), rel(half, exact)
    print(f'\nfloat16: fused {err:.1e}, fp16 composition {err_half:.1e} '
          'vs float64')
    # one rounding to float16 at the end: at most half an ulp
    assert err <= 2 ** -11 * 1.01
    grads = torch.autograd.grad(out.float().sum(), (y, low))
    assert [g.dtype for g in grads] == [torch.float16, torch.float16]


def test_mixed_dtypes_promote_as_the_composition():
    y, low = make(1, 2, 2, 3, 2, dtype=torch.float32)
    out = fused(y, low.half(), 2)
    ref = reference(y, low.half(), 2)
    assert out.dtype == ref.dtype == torch.float32
    # the composition rounds low - nearest_up(pooled) to float16 first
    assert rel(out, ref) < 1e-3


def test_pooled_is_computed_when_not_given():
    y, low = make(1, 2, 3, 2, 4)
    assert torch.allclose(fused(y, low, 4), reference(y, low, 4),
                          rtol=0, atol=1e-12)


def test_custom_op_registration():
    """Schema, fake (meta) implementation, autograd registration and
    AOT dispatch, as torch.library checks them."""
    y, low = make(1, 2, 2, 3, 2, dtype=torch.float32)
    pooled = F.avg_pool2d(low, 2).detach().requires_grad_()
    torch.library.opcheck(lk._laplace_fwd, (y, low, pooled, 2))


def test_compiles_as_one_node():
    y, low = make(1, 2, 2, 3, 4, dtype=torch.float32)

    def fn(y, low):
        return fused(y, low, 4) * 2

    compiled = torch.compile(fn, backend='aot_eager', fullgraph=True)
    out = compiled(y, low)
    ref = fn(y, low)
    assert torch.allclose(out, ref)
    got = torch.autograd.grad(out.sum(), (y, low))
    want = torch.autograd.grad(ref.sum(), (y, low))
    assert all(torch.allclose(a, b) for a, b in zip(got, want))


def test_eager_and_compiled_forms(monkeypatch):
    y, low = make(1, 2, 2, 3, 4, dtype=torch.float32)
    check_forms(monkeypatch, lk, ['_laplace_bwd'],
                'mmtinyvim.laplace_residual_fwd.default',
                lambda a, b: fused(a, b, 4), (y, low))


def test_tracing_uses_the_reference_ops():
    """jit tracing (FLOP counting, ONNX export) sees the standard ops."""
    y, low = make(1, 2, 2, 3, 2, dtype=torch.float32)
    traced = torch.jit.trace(lambda a, b: fused(a, b, 2),
                             (y.detach(), low.detach()))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert 'aten::upsample_bilinear2d' in kinds
    assert not any(k.startswith('mmtinyvim::') for k in kinds)


def test_backend_choice(monkeypatch):
    assert lp.resolve_backend('auto', DEVICE) == (
        'triton' if CUDA else 'reference')
    assert lp.resolve_backend('triton', DEVICE) == 'triton'
    monkeypatch.setenv(lp.ENV_VAR, 'reference')
    assert lp.resolve_backend(None, DEVICE) == 'reference'
    monkeypatch.setenv(lp.ENV_VAR, 'fused')
    with pytest.raises(ValueError, match=r"'fused' \(from environment "
                       r'variable MMTINYVIM_LAPLACE_BACKEND\); valid: auto, '
                       'triton, reference'):
        lp.resolve_backend(None, DEVICE)
    with pytest.raises(ValueError, match="'cuda' .*argument"):
        lp.laplace_upsample_residual(*make(1, 1, 2, 2, 2), 2, backend='cuda')


def test_bad_inputs_are_refused():
    y, low = make(1, 2, 3, 4, 2)
    with pytest.raises(ValueError, match='p must be a positive int'):
        fused(y, low, 2.0)
    with pytest.raises(ValueError, match='p must be a positive int'):
        fused(y, low, True)
    with pytest.raises(ValueError, match='6x8 is not a multiple of p=4'):
        fused(y, low, 4)
    with pytest.raises(ValueError, match=r'y must have the pooled shape '
                       r'\(1, 2, 3, 4\).*got \(1, 2, 4, 3\)'):
        fused(y.transpose(2, 3), low, 2)
    with pytest.raises(ValueError, match='pooled must have the pooled shape'):
        fused(y, low, 2, pooled=low)
    with pytest.raises(ValueError, match='low must be a floating'):
        fused(y, low[0], 2)
    with pytest.raises(ValueError, match='low must be a floating'):
        fused(y, [[1.0]], 2)


# ------------------------------------------------------- the whole backbone --

def test_backbone_gradients_match_reference_path(monkeypatch):
    """A TinyViM-S training step with the kernels forced gives the reference
    path's output and parameter gradients (the kernel ran: counted)."""
    torch.manual_seed(0)
    model = tinyvim.TinyViM('s', scan_backend='torch').to(DEVICE).double()
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64, device=DEVICE)
    calls = []
    kernel = lk.laplace_upsample_residual_triton

    def counted(*args):
        calls.append(args[0].shape)
        return kernel(*args)

    monkeypatch.setattr(lk, 'laplace_upsample_residual_triton', counted)
    results = {}
    for backend in ('triton', 'reference'):
        monkeypatch.setenv(lp.ENV_VAR, backend)
        model.zero_grad()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results[backend] = ([o.detach() for o in outs],
                            [p.grad.clone() for p in model.parameters()
                             if p.grad is not None])
    assert len(calls) == 4  # the mixers of stages 1-3 (p = 8, 4, 2, 2)
    (outs, grads), (ref_outs, ref_grads) = results['triton'], \
        results['reference']
    assert len(grads) == len(ref_grads)
    assert max(rel(a, b) for a, b in zip(outs, ref_outs)) < 1e-10
    # some gradients are mathematically zero (biases before a BatchNorm):
    # errors are relative to the largest gradient of all
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(float((a - b).abs().max())
               for a, b in zip(grads, ref_grads)) < 1e-10 * scale


def test_golden_logits_through_the_kernels(monkeypatch):
    """TinyViM-S's official logits (golden data) with the Triton kernels
    forced (interpreted on CPU)."""
    from tests.golden import load_golden, make_input, rel_err, weights_for
    from tests.test_tinyvim import build_classifier
    g = load_golden('tinyvim_S')
    model = build_classifier('S', scan_backend='torch')
    model.load_state_dict(tinyvim.convert_official_classifier(
        weights_for(g, 'manifest')), strict=True)
    model.eval().to(DEVICE)
    monkeypatch.setenv(lp.ENV_VAR, 'triton')
    calls = []
    kernel = lk.laplace_upsample_residual_triton
    monkeypatch.setattr(lk, 'laplace_upsample_residual_triton',
                        lambda *a: calls.append(1) or kernel(*a))
    # on CUDA, full float32 convolutions and matmuls (as the CPU's) for the
    # parity bound
    tf32 = (torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            logits = model(make_input(g['cls_input_spec']).to(DEVICE),
                           mode='tensor')
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = tf32
    err = rel_err(logits.cpu(), g['cls_logits'])
    print(f'\nTinyViM-S logits, Triton Laplace tail: max|d|/std = {err:.2e}')
    assert calls and err <= 1e-3


# ------------------------------------------------------ CUDA: real shapes --

def _tinyvim_shapes():
    """(name, batch, low channels, pooled h, pooled w, p) of every mixer
    with p > 1, at 224 px and at a detection size (800x1344 -> stride-4
    maps of 200x336)."""
    shapes = []
    for arch, cfg in tinyvim.TinyViM.arch_zoo.items():
        for stage, width in enumerate(cfg['widths']):
            p = tinyvim.POOL_FACTORS[stage]
            if p == 1:
                continue
            low = int(width * tinyvim.LOW_FREQUENCY_SHARES[stage])
            stride = tinyvim.STAGE_STRIDES[stage]
            for batch, (height, width_px) in ((64, (224, 224)),
                                              (2, (800, 1344)),
                                              (3, (224, 224))):
                h = height // stride // p
                w = width_px // stride // p
                shapes.append((f'{arch}{stage}-{height}x{width_px}', batch,
                               low, h, w, p))
    return shapes


def errors_vs_exact(y, low, p):
    """The kernel's output and gradients (y, low, pooled) against the
    composition in float64 on the same values, ``pooled`` included:
    max|d|/max|exact| for each."""
    pooled = F.avg_pool2d(low, p).detach().requires_grad_()
    inputs = (y, low, pooled)
    out = fused(y, low, p, pooled=pooled)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(
        1)).to(out)
    grads = torch.autograd.grad(out, inputs, grad)
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    exact = reference(inputs64[0], inputs64[1], p, pooled=inputs64[2])
    exact_grads = torch.autograd.grad(exact, inputs64, grad.double())
    assert out.dtype == y.dtype and out.shape == exact.shape
    assert [g.dtype for g in grads] == [t.dtype for t in inputs]
    if y.dtype == torch.float16:
        # float32 accumulation, one rounding: the correctly rounded result
        # but for the rare float32 error across a float16 rounding boundary
        for a, b in zip((out, ) + grads, (exact, ) + exact_grads):
            wrong = (a != b.to(a.dtype)).double().mean()
            assert wrong < 0.01, f'{float(wrong):.1%} not correctly rounded'
    return [rel(out, exact)] + [rel(a, b) for a, b in zip(grads, exact_grads)]


@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
def test_errors_vs_exact_small(layout):
    errs = errors_vs_exact(*make(2, 3, 3, 5, 4, dtype=torch.float16,
                                 layout=layout), 4)
    assert max(errs) <= 2 ** -11 * 1.01, errs


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('shape', _tinyvim_shapes(), ids=lambda s: s[0])
def test_cuda_tinyvim_shapes(shape, dtype, layout):
    _, batch, channels, h, w, p = shape
    y, low = make(batch, channels, h, w, p, dtype=dtype, layout=layout)
    errs = errors_vs_exact(y, low, p)
    print(f'\n{shape} {dtype} {layout} vs float64: out, dy, dlow, dpooled '
          '= ' + ', '.join(f'{e:.1e}' for e in errs))
    if dtype == torch.float32:
        assert max(errs) < 1e-5
    else:
        # accumulated in float32 and rounded once: half a float16 ulp
        assert max(errs) <= 2 ** -11 * 1.01


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
def test_cuda_mixer_under_autocast_keeps_dtypes(monkeypatch):
    """Under AMP the mixer gives the same dtype and (to fp16 rounding) the
    same values with the kernel as with the composition."""
    torch.manual_seed(0)
    mixer = tinyvim.LaplaceMixer(64, 1).cuda().train()
    x = torch.randn(4, 64, 56, 40, device='cuda')
    outs = {}
    for backend in ('triton', 'reference'):
        monkeypatch.setenv(lp.ENV_VAR, backend)
        with torch.autocast('cuda', torch.float16):
            out = mixer(x)
        out.float().square().mean().backward()
        outs[backend] = (out, [p.grad.clone() for p in mixer.parameters()])
        mixer.zero_grad()
    (out, grads), (ref, ref_grads) = outs['triton'], outs['reference']
    assert out.dtype == ref.dtype
    assert rel(out, ref) < 5e-3
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(float((a - b).abs().max())
               for a, b in zip(grads, ref_grads)) < 2e-2 * scale


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
def test_cuda_graph_capture_and_inductor():
    y, low = make(8, 24, 7, 7, 8, dtype=torch.float16)
    y, low = y.detach(), low.detach()
    ref = fused(y, low, 8)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fused(y, low, 8)  # warm-up (compilation) outside the capture
        with torch.cuda.graph(graph):
            captured = fused(y, low, 8)
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    assert torch.equal(captured, ref)
    # the op is one opaque node under inductor: given the same pooled grid
    # its output is the eager one bit for bit
    pooled = F.avg_pool2d(low, 8)
    compiled = torch.compile(lambda a, b, c: fused(a, b, 8, pooled=c),
                             fullgraph=True)
    assert torch.equal(compiled(y, low, pooled), fused(y, low, 8, pooled))
    # without it, inductor generates the pooling (and fuses the +1) itself,
    # rounding to float16 at other points than eager ATen: equal to within
    # float16 rounding of the outputs (|out| up to ~4: one ulp is 2e-3)
    compiled = torch.compile(lambda a, b: fused(a, b, 8) + 1, fullgraph=True)
    torch.testing.assert_close(compiled(y, low), ref + 1, atol=1e-3,
                               rtol=2e-3)
