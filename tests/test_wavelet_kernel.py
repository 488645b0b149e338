"""The fused Haar-wavelet kernels (WTE-Mamba, Triton) against the torch code.

On a CUDA machine the compiled kernels run on the GPU at the shapes of every
MobileMamba variant's WTE-Mamba stages; without CUDA the same kernels run on
CPU tensors through Triton's interpreter
(:func:`tests.triton_testing.import_kernels`), on small shapes. Run this
file in its own pytest process (scripts/test.sh), like
tests/test_laplace_kernel.py.
"""
import importlib
import itertools

import pytest
import torch

from tests.triton_testing import CUDA, DEVICE, check_forms, import_kernels

wk = import_kernels('wavelet')
wo = importlib.import_module('mmtinyvim.ops.wavelet')
wv = importlib.import_module('mmtinyvim.models.wavelet')
mm = importlib.import_module('mmtinyvim.models.backbones.mobilemamba')



def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def randn(*shape, dtype=torch.float64, layout='plain', seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=g).to(DEVICE, dtype)
    if layout == 'channels_last' and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(grad)


def bands_like(batch, channels, h, w, dtype, layout, seed=1):
    """Sub-bands as WTE-Mamba has them: a (B, C, 4, h, w) view of the
    depthwise conv's (B, 4C, h, w) output."""
    flat = randn(batch, 4 * channels, h, w, dtype=dtype, layout=layout,
                 seed=seed, grad=False)
    return flat.unflatten(1, (channels, 4)).requires_grad_()


def analysis(x, backend, dtype=None):
    return wv.haar_analysis(x, dtype=dtype, backend=backend)


def synthesis(backend, bands, size, band_scale=None, residual=None,
              residual_scale=None, dtype=None):
    return wv.haar_synthesis(bands, None, size, band_scale=band_scale,
                             residual=residual,
                             residual_scale=residual_scale, dtype=dtype,
                             backend=backend)


def grads_of(fn, inputs, seed=2):
    out = fn()
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(
        seed)).to(out)
    leaves = [t for t in inputs if t is not None]
    return out, torch.autograd.grad(out, leaves, grad)


def compare_analysis(shape, dtype, layout, tol, out_dtype=None):
    x = randn(*shape, dtype=dtype, layout=layout)
    out, grads = grads_of(lambda: analysis(x, 'triton', out_dtype), [x])
    ref, ref_grads = grads_of(lambda: analysis(x, 'reference', out_dtype),
                              [x])
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert grads[0].dtype == x.dtype
    errs = [rel(out, ref), rel(grads[0], ref_grads[0])]
    assert max(errs) <= tol, errs
    return out


def compare_synthesis(shape, dtype, layout, tol, scale=True, residual=True,
                      residual_scale=True, out_dtype=None,
                      residual_dtype=None):
    batch, channels, height, width = shape
    h, w = (height + 1) // 2, (width + 1) // 2
    bands = bands_like(batch, channels, h, w, dtype, layout)
    # the module's scales are float32 parameters (float64 when it is)
    sdt = torch.promote_types(dtype, torch.float32)
    inputs = [bands,
              randn(1, 4 * channels, 1, 1, dtype=sdt, seed=3) if scale
              else None,
              randn(*shape, dtype=residual_dtype or dtype, layout=layout,
                    seed=4) if residual else None,
              randn(1, channels, 1, 1, dtype=sdt, seed=5) if residual_scale
              else None]
    out, grads = grads_of(lambda: synthesis('triton', bands, (height, width),
                                            *inputs[1:], dtype=out_dtype),
                          inputs)
    ref, ref_grads = grads_of(
        lambda: synthesis('reference', bands, (height, width), *inputs[1:],
                          dtype=out_dtype), inputs)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    leaves = [t for t in inputs if t is not None]
    assert [g.dtype for g in grads] == [t.dtype for t in leaves]
    assert [g.shape for g in grads] == [t.shape for t in leaves]
    errs = [rel(out, ref)] + [rel(a, b) for a, b in zip(grads, ref_grads)]
    assert max(errs) <= tol, errs
    return out


ODD_SHAPES = [(1, 3, 5, 7), (2, 2, 4, 6), (1, 1, 1, 1), (1, 5, 6, 3)]


@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
@pytest.mark.parametrize('shape', ODD_SHAPES)
def test_analysis_float64_forward_backward(shape, layout):
    compare_analysis(shape, torch.float64, layout, 1e-15)


@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
@pytest.mark.parametrize('shape', ODD_SHAPES)
def test_synthesis_float64_forward_backward(shape, layout):
    compare_synthesis(shape, torch.float64, layout, 1e-14)


@pytest.mark.parametrize('scale, residual, residual_scale',
                         [c for c in itertools.product((False, True),
                                                       repeat=3)
                          if c[1] or not c[2]])  # no scale without residual
def test_synthesis_optional_parts(scale, residual, residual_scale):
    compare_synthesis((1, 3, 5, 4), torch.float64, 'plain', 1e-14,
                      scale=scale, residual=residual,
                      residual_scale=residual_scale)


def test_output_layout_follows_the_input():
    x = randn(1, 3, 5, 7, layout='channels_last')
    bands = analysis(x, 'triton')
    assert bands.flatten(1, 2).is_contiguous(
        memory_format=torch.channels_last)
    out = synthesis('triton', bands, (5, 7),
                    residual=randn(1, 3, 5, 7, layout='channels_last'))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert analysis(randn(1, 3, 5, 7), 'triton').flatten(1, 2)\
        .is_contiguous()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
def test_half_inputs(dtype, layout):
    """Half inputs are computed in float32 and rounded once: within one
    rounding of the reference (which rounds at the same points)."""
    eps = torch.finfo(dtype).eps
    out = compare_analysis((1, 3, 5, 7), dtype, layout, eps, out_dtype=dtype)
    assert out.dtype == dtype
    compare_analysis((1, 3, 5, 7), dtype, layout, eps)  # float32 bands
    # WTE-Mamba under AMP: half bands and scan branch, float32 scales
    out = compare_synthesis((1, 3, 5, 7), dtype, layout, 2 * eps,
                            out_dtype=dtype)
    assert out.dtype == torch.float32  # the float32 scales promote


def test_gradcheck_analysis_float64():
    x = randn(1, 1, 3, 3)
    assert torch.autograd.gradcheck(lambda t: analysis(t, 'triton'), (x, ))


def test_gradcheck_synthesis_float64():
    bands = bands_like(1, 1, 2, 2, torch.float64, 'plain')
    extra = (randn(1, 4, 1, 1, seed=3), randn(1, 1, 3, 3, seed=4),
             randn(1, 1, 1, 1, seed=5))
    assert torch.autograd.gradcheck(
        lambda b, s, r, rs: synthesis('triton', b, (3, 3), s, r, rs),
        (bands, *extra))


needs_opcheck = pytest.mark.skipif(not hasattr(torch.library, 'opcheck'),
                                   reason='torch.library.opcheck: torch>=2.4')


@needs_opcheck
def test_opcheck_analysis():
    torch.library.opcheck(wk._analysis, (randn(1, 2, 3, 5), torch.float64))


@needs_opcheck
def test_opcheck_synthesis():
    bands = bands_like(1, 2, 2, 3, torch.float64, 'plain')
    args = (bands, randn(1, 8, 1, 1, seed=3), randn(1, 2, 3, 5, seed=4),
            randn(1, 2, 1, 1, seed=5), 3, 5, torch.float64, torch.float64)
    torch.library.opcheck(wk._synthesis, args)


@needs_opcheck
def test_opcheck_synthesis_without_extras():
    bands = bands_like(1, 2, 2, 3, torch.float64, 'plain')
    torch.library.opcheck(wk._synthesis,
                          (bands, None, None, None, 3, 5, torch.float64,
                           torch.float64))


@needs_opcheck
def test_opcheck_synthesis_backward():
    bands = bands_like(1, 2, 2, 3, torch.float64, 'plain').detach()
    args = (randn(1, 2, 3, 5, seed=6, grad=False), bands,
            randn(1, 8, 1, 1, seed=3, grad=False),
            randn(1, 2, 3, 5, seed=4, grad=False),
            randn(1, 2, 1, 1, seed=5, grad=False))
    torch.library.opcheck(wk._synthesis_bwd, args)


def test_compiles_as_one_node():
    """Under torch.compile (no graph break: fullgraph) the forward and the
    backward give the eager values."""
    x = randn(1, 2, 3, 5)
    scale = randn(1, 8, 1, 1, seed=3)

    def fn(t, s):
        bands = analysis(t, 'triton')
        return synthesis('triton', bands, t.shape[2:], band_scale=s,
                         residual=t)

    compiled = torch.compile(fn, backend='aot_eager', fullgraph=True)
    out, grads = grads_of(lambda: compiled(x, scale), [x, scale])
    ref, ref_grads = grads_of(lambda: fn(x, scale), [x, scale])
    assert torch.allclose(out, ref)
    assert all(torch.allclose(a, b) for a, b in zip(grads, ref_grads))


def test_eager_and_compiled_forms(monkeypatch):
    x = randn(1, 2, 3, 5)
    scale = randn(1, 8, 1, 1, seed=3)
    rscale = randn(1, 2, 1, 1, seed=4)
    # the analysis's gradient is a synthesis
    check_forms(monkeypatch, wk, ['_synthesis'],
                'mmtinyvim.haar_analysis.default',
                lambda t: analysis(t, 'triton').sum(2), (x, ))
    check_forms(monkeypatch, wk, ['_synthesis_bwd'],
                'mmtinyvim.haar_synthesis.default',
                lambda b, s, r, rs: synthesis(
                    'triton', b, r.shape[2:], band_scale=s, residual=r,
                    residual_scale=rs),
                (bands_like(1, 2, 2, 3, torch.float64, 'plain'), scale, x,
                 rscale))


def test_tracing_uses_the_reference_ops():
    """Traced (FLOP counters, ONNX) the transforms are standard ops, also
    with the fused backend forced."""
    x = randn(1, 2, 4, 6, grad=False)

    def fn(t):
        return synthesis('triton', analysis(t, 'triton'), (4, 6),
                         residual=t)

    graph = str(torch.jit.trace(fn, (x, )).graph)
    assert 'mmtinyvim::' not in graph and 'aten::add' in graph


def test_export_uses_the_reference_ops():
    class Transform(torch.nn.Module):
        def forward(self, t):
            return synthesis('triton', analysis(t, 'triton'), (4, 6),
                             residual=t)

    x = randn(1, 2, 4, 6, grad=False)
    graph = str(torch.export.export(Transform(), (x, )).graph)
    assert 'mmtinyvim' not in graph and 'aten.add' in graph


def test_backend_choice(monkeypatch):
    cpu = torch.device('cpu')
    monkeypatch.delenv(wo.ENV_VAR, raising=False)
    assert wo.resolve_backend(None, cpu) == 'reference'
    assert wo.resolve_backend('reference', DEVICE) == 'reference'
    assert wo.resolve_backend('triton', DEVICE) == 'triton'
    assert wo.resolve_backend('auto', DEVICE) == (
        'triton' if CUDA else 'reference')
    monkeypatch.setenv(wo.ENV_VAR, 'fast')
    with pytest.raises(ValueError, match='Unknown Haar-wavelet backend '
                       "'fast' .*MMTINYVIM_WAVELET_BACKEND"):
        wo.resolve_backend(None, cpu)
    monkeypatch.setenv(wo.ENV_VAR, 'triton')
    meta = torch.device('meta')
    with pytest.raises(RuntimeError, match='not available for meta'):
        wo.resolve_backend(None, meta)


def test_bad_inputs_are_refused():
    """The kernels read and write by the shapes they are given: a mismatch
    is refused before a launch instead of reading out of bounds."""
    x = randn(1, 2, 5, 7, grad=False)
    bands = analysis(x, 'triton')
    with pytest.raises(ValueError, match='x must be a floating'):
        analysis(x[0], 'triton')
    with pytest.raises(ValueError, match=r'bands must have the shape '
                       r'\(1, 2, 4, 4, 4\), got \(1, 2, 4, 3, 4\)'):
        synthesis('triton', bands, (8, 7))
    with pytest.raises(ValueError, match='residual must have the shape'):
        synthesis('triton', bands, (5, 7), residual=x[:, :1])
    with pytest.raises(ValueError, match='band_scale must hold 8 values'):
        synthesis('triton', bands, (5, 7), band_scale=randn(1, 2, 1, 1))
    with pytest.raises(ValueError, match='must be a floating'):
        synthesis('triton', bands.flatten(1, 2), (5, 7))


# ------------------------------------------------------------ WTE-Mamba --

def _module_step(module, x, monkeypatch, backend, autocast=False):
    monkeypatch.setenv(wo.ENV_VAR, backend)
    module.zero_grad()
    if x.grad is not None:
        x.grad = None
    with torch.autocast(DEVICE.type, torch.float16, enabled=autocast):
        out = module(x)
    out.float().square().mean().backward()
    return out.detach(), [x.grad.clone()] + [
        p.grad.clone() for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize('fused, layout', [(False, 'plain'), (True, 'plain'),
                                           (False, 'channels_last')])
def test_wte_mamba_matches_reference_path(monkeypatch, fused, layout):
    """WTE-Mamba at an odd size, forward and every gradient, with the
    kernels forced (counted: they ran) against the torch code; also once
    its scales are folded (``fuse``)."""
    torch.manual_seed(0)
    module = mm.WTEMamba(16, 3).to(DEVICE).double()
    if fused:
        module.eval().fuse()
    x = randn(1, 16, 5, 7, layout=layout)
    calls = []
    for name in ('haar_analysis_triton', 'haar_synthesis_triton'):
        kernel = getattr(wk, name)
        monkeypatch.setattr(
            wk, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or
            _k(*a))
    with monkeypatch.context() as m:
        m.setenv('MMTINYVIM_SCAN_BACKEND', 'torch')
        out, grads = _module_step(module, x, m, 'triton')
        ref, ref_grads = _module_step(module, x, m, 'reference')
    assert sorted(set(calls)) == ['haar_analysis_triton',
                                  'haar_synthesis_triton']
    assert len(grads) == len(ref_grads)
    assert rel(out, ref) < 1e-12
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(float((a - b).abs().max())
               for a, b in zip(grads, ref_grads)) < 1e-12 * scale


def test_loaded_non_haar_filters_stay_on_the_convolutions(monkeypatch):
    module = mm.WTEMamba(16, 3).to(DEVICE)
    state = module.state_dict()
    state['wt_filter'] = state['wt_filter'] * 1.5
    module.load_state_dict(state)

    def refuse(*args):
        raise AssertionError('the fused kernels ran for non-Haar filters')

    monkeypatch.setattr(wk, 'haar_analysis_triton', refuse)
    monkeypatch.setattr(wk, 'haar_synthesis_triton', refuse)
    monkeypatch.setenv(wo.ENV_VAR, 'triton')
    monkeypatch.setenv('MMTINYVIM_SCAN_BACKEND', 'torch')
    module(torch.randn(1, 16, 4, 4, device=DEVICE))


# ------------------------------------------------------------------ CUDA --

def _wte_shapes():
    """(id, channels, height, width) of every variant's WTE-Mamba stages at
    its ImageNet resolution (the stem is stride 16, then stride 2 per
    stage; each stride-2 conv gives ceil(n / 2))."""
    shapes = []
    for name, arch in mm.MobileMamba.arch_zoo.items():
        size = arch['img_size']
        for _ in range(4):
            size = (size + 1) // 2
        for stage, dim in enumerate(arch['embed_dims']):
            if stage:
                size = (size + 1) // 2
            channels = mm.mrffi_channel_split(
                dim, arch['global_ratios'][stage],
                arch['local_ratios'][stage])[0]
            if channels:
                shapes.append((f'{name}-stage{stage + 1}', channels, size,
                               size))
    return shapes


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('batch', [1, 32])
@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16,
                                   torch.bfloat16])
@pytest.mark.parametrize('shape', _wte_shapes(), ids=lambda s: s[0])
def test_cuda_mobilemamba_shapes(shape, dtype, layout, batch):
    _, channels, height, width = shape
    eps = torch.finfo(dtype).eps
    # float32: the scales' gradients are sums over all pixels, in another
    # order than torch's
    tol = 1e-5 if dtype == torch.float32 else eps
    compare_analysis((batch, channels, height, width), dtype, layout, tol,
                     out_dtype=dtype)
    compare_synthesis((batch, channels, height, width), dtype, layout,
                      tol if dtype == torch.float32 else 2 * eps,
                      out_dtype=dtype)


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('autocast', [False, True])
def test_cuda_wte_mamba_module(monkeypatch, autocast):
    torch.manual_seed(0)
    module = mm.WTEMamba(288, 5).cuda().train()
    x = torch.randn(8, 288, 13, 13, device='cuda', requires_grad=True)
    out, grads = _module_step(module, x, monkeypatch, 'triton', autocast)
    ref, ref_grads = _module_step(module, x, monkeypatch, 'reference',
                                  autocast)
    assert out.dtype == ref.dtype
    assert rel(out, ref) < (5e-3 if autocast else 1e-5)
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads)
               ) < (2e-2 if autocast else 1e-5) * scale


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
def test_cuda_graph_capture_and_inductor():
    x = randn(8, 144, 13, 13, dtype=torch.float16, grad=False)
    res = randn(8, 144, 13, 13, dtype=torch.float16, seed=4, grad=False)

    def fn(t, r):
        return synthesis('triton', analysis(t, 'triton', torch.float16),
                         t.shape[2:], residual=r, dtype=torch.float16)

    ref = fn(x, res)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn(x, res)  # warm-up (compilation) outside the capture
        with torch.cuda.graph(graph):
            captured = fn(x, res)
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    assert torch.equal(captured, ref)
    compiled = torch.compile(lambda a, b: fn(a, b) + 1, fullgraph=True)
    assert torch.allclose(compiled(x, res), ref + 1, atol=1e-2)
    x.requires_grad_()
    compiled_step = torch.compile(lambda a, b: fn(a, b).float().sum(),
                                  fullgraph=True)
    compiled_step(x, res).backward()
    assert x.grad is not None and x.grad.isfinite().all()


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('arch', sorted(mm.MobileMamba.arch_zoo))
def test_cuda_backbone_training_step_matches_reference(monkeypatch, arch):
    """Every variant at its ImageNet size (batch 2, float32, train mode):
    the outputs and all parameter gradients with the kernels equal the
    torch path's to float32 rounding."""
    torch.manual_seed(0)
    model = mm.MobileMamba(arch).cuda()
    size = mm.MobileMamba.arch_zoo[arch]['img_size']
    x = torch.randn(2, 3, size, size, device='cuda')
    results = {}
    for backend in ('triton', 'reference'):
        monkeypatch.setenv(wo.ENV_VAR, backend)
        model.zero_grad()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results[backend] = ([o.detach() for o in outs],
                            [p.grad.clone() for p in model.parameters()
                             if p.grad is not None])
    (outs, grads), (ref_outs, ref_grads) = results['triton'], \
        results['reference']
    assert max(rel(a, b) for a, b in zip(outs, ref_outs)) < 1e-4
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(float((a - b).abs().max())
               for a, b in zip(grads, ref_grads)) < 1e-3 * scale
