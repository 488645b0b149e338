"""The Triton selective scan against the sequential reference.

On a CUDA machine the compiled kernels run on the GPU, at the shapes the
backbones use; without CUDA the same kernels run on CPU tensors through
Triton's interpreter (:func:`tests.triton_testing.import_kernels`), on tiny
shapes.
"""
import importlib

import pytest
import torch

from tests.triton_testing import CUDA, DEVICE, check_forms, import_kernels

sst = import_kernels('scan')
ss = importlib.import_module('mmtinyvim.ops.scan')


# (batch, directions K, channels per direction, d_state N, H, W, max_block_l)
if CUDA:
    PLAIN_SHAPES = [(8, 4, 84, 8, 7, 7, 1024),      # TinyViM-S stage 3
                    (4, 2, 320, 1, 32, 32, 1024),   # MobileMamba-B4 stage 1
                    (2, 2, 64, 1, 50, 84, 1024)]    # detection size, 5 chunks
else:
    PLAIN_SHAPES = [(2, 4, 3, 8, 3, 4, 1024), (2, 2, 3, 1, 5, 7, 8)]


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


def test_eager_and_compiled_forms(monkeypatch):
    x = make_inputs(1, 2, 2, 1, 6, 4)
    names = list(x)
    check_forms(monkeypatch, sst, ['_scan_bwd'],
                'mmtinyvim.selective_scan_fwd.default',
                lambda *t: ss.selective_scan(**dict(zip(names, t)),
                                             backend='triton'),
                tuple(x.values()))


def test_compiles_without_graph_breaks():
    """The kernels are custom ops: dynamo keeps each as one node."""
    x = make_inputs(1, 2, 2, 1, 6, 4)
    detached = {k: v.detach() for k, v in x.items()}

    def fn(**inputs):
        return ss.selective_scan(**inputs, backend='triton') * 2

    compiled = torch.compile(fn, backend='eager', fullgraph=True)
    assert torch.allclose(compiled(**detached), fn(**detached))
