"""The selective scan: every CPU backend against a float64 recurrence."""
import importlib

import pytest
import torch

# the package exports a function of the same name as this module
ss = importlib.import_module('mmtinyvim.ops.scan')


def make_inputs(batch=2, k=2, d=3, n=4, length=37, dtype=torch.float64,
                seed=0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) *
                scale).requires_grad_()

    return dict(
        u=rand(batch, k * d, length), delta=rand(batch, k * d, length),
        A=(-torch.rand(k * d, n, generator=g, dtype=dtype) * 2 -
           0.1).requires_grad_(),
        B=rand(batch, k, n, length), C=rand(batch, k, n, length),
        D=rand(k * d), delta_bias=rand(k * d, scale=0.5))


@pytest.mark.parametrize('length', [1, 2, 5, 37, 64, 300])
def test_parallel_matches_sequential_float64(length):
    x = make_inputs(length=length)
    ref = ss.selective_scan_reference(**x)
    out = ss.selective_scan_parallel(**x)
    err = (out - ref).abs().max().item() / ref.std().item()
    print(f'\nparallel vs sequential (L={length}): max|d|/std = {err:.2e}')
    assert err < 1e-10


def test_parallel_gradcheck():
    x = make_inputs(batch=1, k=2, d=2, n=2, length=11)
    assert torch.autograd.gradcheck(ss.selective_scan_parallel,
                                    tuple(x.values()), eps=1e-6, atol=1e-6)


def test_parallel_gradients_match_reference():
    x = make_inputs(length=40)
    grad_out = torch.randn(2, 6, 40, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ss.selective_scan_reference(**x),
                                    tuple(x.values()), grad_out)
    out_grads = torch.autograd.grad(ss.selective_scan_parallel(**x),
                                    tuple(x.values()), grad_out)
    for name, r, o in zip(x, ref_grads, out_grads):
        err = ((o - r).abs().max() / r.abs().max()).item()
        assert err < 1e-10, (name, err)


def test_strong_decay_stays_finite():
    """Fast decays underflow to zero; nothing may overflow or become NaN."""
    x = make_inputs(length=64)
    with torch.no_grad():
        x['A'].mul_(200.0)
        x['delta'].add_(5.0)
    out = ss.selective_scan_parallel(**x)
    ref = ss.selective_scan_reference(**x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-9, rtol=1e-9)


def test_batch_samples_are_independent():
    x = make_inputs(batch=3)
    out = ss.selective_scan(**{k: v.detach() for k, v in x.items()},
                            backend='torch')
    for i in range(3):
        one = {k: (v.detach()[i:i + 1] if v.dim() >= 3 else v.detach())
               for k, v in x.items()}
        assert torch.allclose(out[i:i + 1],
                              ss.selective_scan(**one, backend='torch'))


def test_dispatch_runs_float32_under_autocast():
    x = {k: v.detach().to(torch.bfloat16) for k, v in make_inputs().items()}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ss.selective_scan(**x)
    assert out.dtype == torch.float32


def test_backend_errors(monkeypatch):
    monkeypatch.setattr(ss, '_mamba_ssm_ok', False)  # as on a CPU machine
    x = {k: v.detach().float() for k, v in make_inputs().items()}
    with pytest.raises(ValueError, match='valid: auto, '):
        ss.selective_scan(**x, backend='cuda_magic')
    with pytest.raises(RuntimeError, match='mamba_ssm.*not available.*pip'):
        ss.selective_scan(**x, backend='mamba_ssm')
    monkeypatch.setenv(ss.ENV_VAR, 'reference')
    assert ss.resolve_backend(None, torch.device('cpu')) == 'reference'
    monkeypatch.setenv(ss.ENV_VAR, 'bogus')
    with pytest.raises(ValueError, match=ss.ENV_VAR):
        ss.resolve_backend(None, torch.device('cpu'))


def test_auto_is_torch_on_cpu():
    assert ss.resolve_backend('auto', torch.device('cpu')) == 'torch'


def test_every_input_gets_a_gradient_for_a_single_token():
    """DDP needs a gradient for every parameter, also when L == 1."""
    x = make_inputs(length=1)
    grads = torch.autograd.grad(ss.selective_scan_parallel(**x).sum(),
                                tuple(x.values()), allow_unused=True)
    assert all(g is not None for g in grads)


def test_cross_scan_and_merge_are_the_official_layouts():
    from mmtinyvim.ops.scan.cross import cross_merge, cross_scan
    x = torch.randn(2, 3, 4, 5)
    rows, cols = x.flatten(2), x.transpose(2, 3).flatten(2)
    assert torch.equal(cross_scan(x, 2),
                       torch.stack((rows, rows.flip(-1)), 1))
    assert torch.equal(cross_scan(x, 4), torch.stack(
        (rows, cols, rows.flip(-1), cols.flip(-1)), 1))
    # merging the unchanged sequences adds each pixel once per direction
    for k in (2, 4):
        assert torch.allclose(cross_merge(cross_scan(x, k), 4, 5), k * x)
    with pytest.raises(ValueError, match='valid: 2, 4'):
        cross_scan(x, 3)
