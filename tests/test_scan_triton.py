"""The Triton selective scan against the sequential reference.

On a CUDA machine the compiled kernels run on the GPU, at the shapes the
backbones use; without CUDA the same kernels run on CPU tensors through
Triton's interpreter (``TRITON_INTERPRET=1``, set below before the kernels are
defined), on tiny shapes.
"""
import importlib
import os

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault('TRITON_INTERPRET', '1')

sst = importlib.import_module('mmtinyvim.ops.selective_scan_triton')
ss = importlib.import_module('mmtinyvim.ops.selective_scan')

DEVICE = torch.device('cuda' if CUDA else 'cpu')
assert CUDA or sst.INTERPRETED, (
    'mmtinyvim.ops.selective_scan_triton was imported before this test set '
    'TRITON_INTERPRET=1; run this file on its own or first')

# (batch, directions K, channels per direction, d_state N, H, W, max_block_l)
if CUDA:
    PLAIN_SHAPES = [(8, 4, 84, 8, 7, 7, 1024),      # TinyViM-S stage 3
                    (4, 2, 320, 1, 32, 32, 1024),   # MobileMamba-B4 stage 1
                    (2, 2, 64, 1, 50, 84, 1024)]    # detection size, 5 chunks
    CROSS_SHAPES = [('cross2d', 8, 4, 168, 8, 7, 7, 1024),
                    ('cross2d', 2, 4, 12, 8, 25, 42, 256),
                    ('bidi', 4, 2, 320, 1, 16, 16, 1024),
                    ('bidi', 2, 2, 64, 1, 50, 84, 1024)]
else:
    PLAIN_SHAPES = [(2, 4, 3, 8, 3, 4, 1024), (2, 2, 3, 1, 5, 7, 8)]
    CROSS_SHAPES = [('cross2d', 2, 4, 3, 2, 3, 5, 1024),
                    ('cross2d', 1, 4, 2, 2, 5, 6, 8),
                    ('bidi', 2, 2, 3, 1, 4, 5, 8)]


def make_inputs(batch, k, d, n, length, u_channels, seed=0,
                dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(
            DEVICE, dtype).requires_grad_()

    return dict(
        u=rand(batch, u_channels, length), delta=rand(batch, k * d, length),
        A=(-torch.rand(k * d, n, generator=g) * 2 - 0.1).to(
            DEVICE).requires_grad_(),
        B=rand(batch, k, n, length), C=rand(batch, k, n, length),
        D=rand(k * d).float().detach().requires_grad_(),
        delta_bias=rand(k * d, scale=0.5).float().detach().requires_grad_())


def errors(out, ref, grads, ref_grads, names):
    """Forward max|d|/std(ref) and, per input, max|d|/max|ref grad|."""
    out, ref = out.detach().double(), ref.detach().double()
    fwd = (out - ref).abs().max() / ref.std()
    bwd = {name: float((a.double() - b.double()).abs().max() /
                       b.double().abs().max())
           for name, a, b in zip(names, grads, ref_grads)}
    return float(fwd), bwd


def reference_grads(fn, inputs, grad_out):
    """Reference output and gradients in float64 from the same values."""
    inputs64 = {k: v.detach().double().requires_grad_()
                for k, v in inputs.items()}
    out = fn(**inputs64)
    return out, torch.autograd.grad(out, tuple(inputs64.values()),
                                    grad_out.double())


@pytest.mark.parametrize('shape', PLAIN_SHAPES)
def test_plain_layout_matches_reference(shape):
    batch, k, d, n, height, width, max_block_l = shape
    length = height * width
    x = make_inputs(batch, k, d, n, length, k * d)
    out = sst.selective_scan_triton(**x, max_block_l=max_block_l)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, tuple(x.values()), grad_out)
    ref, ref_grads = reference_grads(ss.selective_scan_reference, x,
                                     grad_out)
    fwd, bwd = errors(out, ref, grads, ref_grads, x)
    print(f'\ntriton plain {shape} on {DEVICE.type}: forward max|d|/std = '
          f'{fwd:.1e}; backward max|d|/max|g| = ' +
          ', '.join(f'{k} {v:.1e}' for k, v in bwd.items()))
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert fwd < 1e-5
    assert max(bwd.values()) < 5e-5


def explicit_cross_scan(x, delta, A, B, C, D, delta_bias, order):
    """merge(scan(cross_scan(x))) written with flips and transposes, as in the
    official code, for (batch, D, H, W) inputs given per pixel."""
    batch, channels, height, width = x.shape
    k = B.shape[1]

    def directions(t):  # (batch, k, c, H, W) -> (batch, k, c, H*W)
        rows, cols = t.flatten(3), t.transpose(3, 4).flatten(3)
        if order == 'bidi':
            return torch.stack((rows[:, 0], rows[:, 1].flip(-1)), 1)
        return torch.stack((rows[:, 0], cols[:, 1], rows[:, 2].flip(-1),
                            cols[:, 3].flip(-1)), 1)

    xs = directions(x[:, None].expand(batch, k, channels, height, width))
    ys = ss.selective_scan_reference(
        xs.flatten(1, 2),
        directions(delta.view(batch, k, channels, height, width)).flatten(
            1, 2), A, directions(B), directions(C), D, delta_bias)
    ys = ys.view(batch, k, channels, -1)
    if order == 'bidi':
        y = ys[:, 0] + ys[:, 1].flip(-1)
        return y.view(batch, channels, height, width)
    rows = ys[:, 0] + ys[:, 2].flip(-1)
    cols = ys[:, 1] + ys[:, 3].flip(-1)
    return (rows.view(batch, channels, height, width) +
            cols.view(batch, channels, width, height).transpose(2, 3))


def cross_inputs(order, batch, k, d, n, height, width, seed=0):
    x = make_inputs(batch, k, d, n, height * width, d, seed)
    return dict(
        x=x['u'].detach().view(batch, d, height, width).requires_grad_(),
        delta=x['delta'].detach().view(batch, k * d, height,
                                       width).requires_grad_(),
        A=x['A'],
        B=x['B'].detach().view(batch, k, n, height, width).requires_grad_(),
        C=x['C'].detach().view(batch, k, n, height, width).requires_grad_(),
        D=x['D'], delta_bias=x['delta_bias'])


@pytest.mark.parametrize('shape', CROSS_SHAPES)
def test_fused_cross_scan_matches_explicit_cross_scan(shape):
    order, batch, k, d, n, height, width, max_block_l = shape
    x = cross_inputs(order, batch, k, d, n, height, width)
    out = sst.selective_scan_triton(
        x['x'].flatten(2), x['delta'].flatten(2), x['A'], x['B'].flatten(3),
        x['C'].flatten(3), x['D'], x['delta_bias'], order=order,
        height=height, max_block_l=max_block_l).view_as(x['x'])
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, tuple(x.values()), grad_out)

    def reference(**inputs):
        return explicit_cross_scan(**inputs, order=order)

    ref, ref_grads = reference_grads(reference, x, grad_out)
    fwd, bwd = errors(out, ref, grads, ref_grads, x)
    print(f'\ntriton fused {shape} on {DEVICE.type}: forward max|d|/std = '
          f'{fwd:.1e}; backward max|d|/max|g| = ' +
          ', '.join(f'{k} {v:.1e}' for k, v in bwd.items()))
    assert fwd < 1e-5
    assert max(bwd.values()) < 5e-5


@pytest.mark.parametrize('order', ['bidi', 'cross2d'])
def test_cross_selective_scan_backends_agree(order):
    k = ss.SCAN_ORDERS[order]
    x = cross_inputs(order, 2, k, 3, 2, 3, 4, seed=1)
    grad_out = torch.randn(2, 3, 3, 4, device=DEVICE)
    results = {}
    for backend in ('triton', 'torch'):
        out = ss.cross_selective_scan(**x, order=order, backend=backend)
        results[backend] = (out, torch.autograd.grad(
            out, tuple(x.values()), grad_out))
    fwd, bwd = errors(results['triton'][0], results['torch'][0],
                      results['triton'][1], results['torch'][1], x)
    print(f'\ncross_selective_scan({order}) triton vs torch: forward '
          f'{fwd:.1e}, worst gradient {max(bwd.values()):.1e}')
    assert fwd < 1e-5 and max(bwd.values()) < 5e-5


def test_half_inputs_give_float32_output_and_input_dtype_grads():
    x = make_inputs(2, 2, 4, 1, 12, 8, dtype=torch.float16)
    out = ss.selective_scan(**x, backend='triton')
    assert out.dtype == torch.float32
    grads = torch.autograd.grad(out.sum(), tuple(x.values()))
    assert [g.dtype for g in grads] == [v.dtype for v in x.values()]
    ref = ss.selective_scan_reference(**{k: v.detach().float()
                                         for k, v in x.items()})
    err = float((out.detach() - ref).abs().max() / ref.std())
    print(f'\nfloat16 inputs: max|d|/std vs the reference on the same '
          f'values = {err:.1e}')
    assert err < 1e-5


def test_optional_terms_and_no_softplus():
    x = make_inputs(1, 2, 3, 2, 9, 6)
    for drop in (('D', ), ('delta_bias', ), ('D', 'delta_bias')):
        args = {k: v for k, v in x.items() if k not in drop}
        out = ss.selective_scan(**args, delta_softplus=False,
                                backend='triton')
        ref = ss.selective_scan_reference(**args, delta_softplus=False)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5), drop


def test_auto_backend_and_availability():
    assert ss.triton_available(DEVICE)
    assert ss.resolve_backend('triton', DEVICE) == 'triton'
    expected = 'triton' if CUDA else 'torch'
    assert ss.resolve_backend('auto', DEVICE) == expected


def test_compiles_without_graph_breaks():
    """The kernels are custom ops: dynamo keeps each as one node."""
    x = cross_inputs('bidi', 1, 2, 2, 1, 2, 3)
    detached = {k: v.detach() for k, v in x.items()}

    def fn(**inputs):
        return ss.cross_selective_scan(**inputs, order='bidi',
                                       backend='triton') * 2

    compiled = torch.compile(fn, backend='eager', fullgraph=True)
    assert torch.allclose(compiled(**detached), fn(**detached))


def test_scan_pixel_order():
    order = ss.scan_pixel_order('cross2d', 2, 3)
    assert order.tolist() == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5],
                              [5, 4, 3, 2, 1, 0], [5, 2, 4, 1, 3, 0]]
    assert ss.scan_pixel_order('bidi', 1, 3).tolist() == [[0, 1, 2],
                                                          [2, 1, 0]]
    with pytest.raises(ValueError, match='valid: bidi, cross2d'):
        ss.scan_pixel_order('diagonal', 2, 2)


def test_cross_selective_scan_rejects_bad_shapes():
    x = cross_inputs('cross2d', 1, 4, 2, 2, 3, 3)
    x = {k: v.detach() for k, v in x.items()}
    with pytest.raises(ValueError, match=r'expects B of shape'):
        ss.cross_selective_scan(**{**x, 'B': x['B'][:, :2]}, order='cross2d',
                                backend='torch')
    with pytest.raises(ValueError, match='expects delta of shape'):
        ss.cross_selective_scan(**x, order='bidi', backend='torch')
    with pytest.raises(ValueError, match=r'expects x of shape'):
        ss.cross_selective_scan(**{**x, 'x': x['x'].flatten(2)},
                                backend='torch')
    with pytest.raises(ValueError, match='does not divide'):
        sst.selective_scan_triton(
            x['x'].flatten(2), x['delta'].flatten(2), x['A'],
            x['B'].flatten(3), x['C'].flatten(3), order='cross2d', height=2)
