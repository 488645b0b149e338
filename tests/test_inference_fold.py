"""The network as built folds its Conv-BN blocks by itself in eval mode
without autograd (``models.layers.FoldsForInference``): same outputs as the
unfolded blocks, the cache follows every change of the weights, and nothing
else (training, autograd, tracing, state dicts, pickling) sees it."""
import copy
import io
import pickle

import pytest
import torch
import torch.nn as nn

from mmtinyvim.models.backbones.mobilemamba import LocalDWConv, MobileMamba
from mmtinyvim.models.backbones.tinyvim import RepDWConv, TinyViM
from mmtinyvim.models.layers import BatchNorm2d, ConvBN, FoldsForInference

from .golden import rel_err


def _trained_like(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affines, as after training (fresh ones fold
    to the identity and would hide a wrong fold)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return module.eval()


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _folded_blocks(model):
    """The outermost foldable blocks (the ones inside them do not run once
    they are folded)."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, FoldsForInference) and m.folds_for_inference()]
    outer = [n for n in names
             if not any(n.startswith(p + '.') for p in names)]
    return [model.get_submodule(n) for n in outer]


def _bn_calls(model, x):
    """Names of the BatchNorm modules that ran for ``model(x)``."""
    ran, hooks = [], []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_hook(
                lambda mod, args, out, name=name: ran.append(name)))
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return ran


NETWORKS = {
    'tinyvim-s': lambda: TinyViM(arch='s', out_indices=(0, 1, 2, 3)),
    'mobilemamba-t2': lambda: MobileMamba(arch='t2', out_indices=(0, 1, 2, 3),
                                          scan_backend='reference'),
}


@pytest.mark.parametrize('name', sorted(NETWORKS))
def test_network_folds_in_eval_without_autograd(name):
    torch.manual_seed(0)
    model = _trained_like(NETWORKS[name]())
    x = torch.randn(2, 3, 96, 128)
    with torch.enable_grad():
        ref = _outputs(model(x))
        unfolded_bns = _bn_calls(model, x)
    assert not any('_inference_folded' in m.__dict__ for m in model.modules())
    with torch.no_grad():
        out = _outputs(model(x))
        folded_bns = _bn_calls(model, x)
    errs = [rel_err(o, r.detach()) for o, r in zip(out, ref)]
    print(f'\n{name} folded vs unfolded eval: max|d|/std = ' +
          ', '.join(f'{e:.2e}' for e in errs))
    assert max(errs) <= 1e-4
    blocks = _folded_blocks(model)
    assert blocks and all('_inference_folded' in m.__dict__ for m in blocks)
    inside = {f'{n}.{c}' for n, m in model.named_modules()
              if isinstance(m, FoldsForInference) and m.folds_for_inference()
              for c, sub in m.named_modules() if c and
              isinstance(sub, nn.modules.batchnorm._BatchNorm)}
    # every BatchNorm of a foldable block ran unfolded, none ran folded
    assert inside <= set(unfolded_bns)
    assert not inside & set(folded_bns)
    assert len(folded_bns) < len(unfolded_bns)
    # under inference_mode too, same cache
    with torch.inference_mode():
        again = _outputs(model(x))
    assert max(rel_err(o, r.detach()) for o, r in zip(again, ref)) <= 1e-4


@pytest.mark.parametrize('block', [
    lambda: ConvBN(6, 8, 3, padding=1),
    lambda: RepDWConv(6),
    lambda: LocalDWConv(6, 5),
], ids=['ConvBN', 'RepDWConv', 'LocalDWConv'])
def test_fold_follows_every_change_of_the_weights(block):
    torch.manual_seed(1)
    m = _trained_like(block())
    x = torch.randn(2, 6, 9, 11)

    def check():
        with torch.enable_grad():
            ref = m(x).detach()
        with torch.no_grad():
            out = m(x)
        assert rel_err(out, ref) <= 1e-5
        return m.inference_fold_cached()

    with torch.no_grad():
        first = m.inference_fold()
        assert first is not None and m.inference_fold() is first  # cached
    check()
    bn = next(b for b in m.modules() if isinstance(b, nn.BatchNorm2d))
    conv = next(c for c in m.modules() if isinstance(c, nn.Conv2d))
    # in-place changes: weights, statistics, affine (optimizer steps,
    # running-statistics updates)
    for t in (conv.weight, bn.running_var, bn.running_mean, bn.weight,
              bn.bias):
        with torch.no_grad():
            t.mul_(1.5).add_(0.1)
        assert check() is not first
        first = m.inference_fold_cached()
    # a new parameter object
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))
    assert check() is not first
    # load_state_dict of other weights
    other = _trained_like(block(), seed=7)
    m.load_state_dict(other.state_dict())
    check()
    with torch.no_grad():
        assert rel_err(m(x), other(x)) <= 1e-5
    # another dtype (.to swaps the tensors' data)
    m.double()
    x = x.double()
    with torch.no_grad():
        assert m(x).dtype == torch.float64
    check()


def test_no_fold_while_training_recording_or_with_batch_statistics():
    m = _trained_like(ConvBN(4, 4, 1))
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert m.inference_fold() is not None
    m.train()
    assert m.inference_fold_cached() is None  # train() drops it
    with torch.no_grad():
        assert m.inference_fold() is None
        m.eval()
        m.bn.train()  # a submodule in training mode: batch statistics
        assert m.inference_fold() is None
        before = m.bn.running_mean.clone()
        m(x)
        assert not torch.equal(before, m.bn.running_mean)  # it trained
        m.bn.eval()
        assert m.inference_fold() is not None
    assert m.inference_fold() is None  # autograd records for its weights
    plain = ConvBN(4, 4, 1)
    plain.bn = BatchNorm2d(4, track_running_stats=False)
    plain.eval()
    with torch.no_grad():
        assert plain.inference_fold() is None
        out = plain(x)
    ref = nn.functional.batch_norm(plain.c(x), None, None, training=True)
    assert torch.allclose(out, ref, atol=1e-5)


def test_tracing_and_compiling_see_the_blocks_as_written():
    m = _trained_like(ConvBN(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        traced = torch.jit.trace(m, (x, ))
    assert 'batch_norm' in str(traced.inlined_graph)
    assert torch.allclose(traced(x), m(x), atol=1e-5)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(str(gm.graph))
        return gm.forward

    torch._dynamo.reset()
    m.train().eval()  # drop the fold the trace's check run made
    with torch.no_grad():
        out = torch.compile(m, backend=backend)(x)
    assert graphs and 'batch_norm' in graphs[0]
    assert m.inference_fold_cached() is None
    with torch.no_grad():
        assert torch.allclose(out, m(x), atol=1e-5)


def test_state_dict_copies_and_pickles_do_not_hold_the_fold():
    model = _trained_like(NETWORKS['tinyvim-s']())
    keys = list(model.state_dict())
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert list(model.state_dict()) == keys
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not any('_inference_folded' in m.__dict__
                       for m in clone.modules())
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            for a, b in zip(clone(x), model(x)):
                assert torch.allclose(a, b, atol=1e-5)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    assert len(buffer.getvalue()) < 1.2 * sum(
        t.numel() * t.element_size() for t in model.state_dict().values()
    ) + 2 ** 20


@pytest.mark.parametrize('device,dtype', [
    ('cpu', torch.bfloat16),
    pytest.param('cuda', torch.float16, marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs CUDA')),
])
@pytest.mark.parametrize('name', sorted(NETWORKS))
def test_fold_under_autocast(name, device, dtype):
    """Under autocast the folded conv runs in the autocast dtype with
    float32-folded weights (the BatchNorm's scale rounded into them), the
    unfolded block rounds the conv's output before its BatchNorm: against
    the float32 network both carry that dtype's rounding, of the same order
    (measured: folded 0.9-2.3x the unfolded error, bfloat16 on CPU and
    float16 on an H100)."""
    torch.manual_seed(0)
    model = _trained_like(NETWORKS[name]()).to(device)
    x = torch.randn(2, 3, 96, 128, device=device)
    exact = [o.detach() for o in _outputs(model(x))]
    with torch.autocast(device, dtype=dtype):
        with torch.enable_grad():
            plain = [o.detach().float() for o in _outputs(model(x))]
        with torch.no_grad():
            folded = [o.float() for o in _outputs(model(x))]
    assert all(m.inference_fold_cached() is not None
               for m in _folded_blocks(model))
    err_plain = max(rel_err(o, r) for o, r in zip(plain, exact))
    err_folded = max(rel_err(o, r) for o, r in zip(folded, exact))
    print(f'\n{name} {device} {dtype} against float32: max|d|/std '
          f'unfolded {err_plain:.2e}, folded {err_folded:.2e}')
    assert err_folded <= 2.5 * err_plain + 1e-3


def test_residual_folds_only_its_depthwise_conv_bn_form():
    """MobileMamba's Residual runs as one conv for a residual depthwise
    Conv-BN; for any other body it is not folded itself (its fuse() would
    change it in place), the body's own blocks fold."""
    from mmtinyvim.models.backbones.mobilemamba import FFN, Residual
    torch.manual_seed(2)
    dw = _trained_like(Residual(ConvBN(6, 6, 3, padding=1, groups=6)))
    ffn = _trained_like(Residual(FFN(6, 12)))
    x = torch.randn(2, 6, 7, 9)
    for block in (dw, ffn):
        with torch.enable_grad():
            ref = block(x).detach()
        with torch.no_grad():
            out = block(x)
        assert rel_err(out, ref) <= 1e-5
    assert isinstance(dw.inference_fold_cached(), nn.Conv2d)
    assert not ffn.folds_for_inference()
    with torch.no_grad():
        assert ffn.inference_fold() is None
    assert ffn.inference_fold_cached() is None
    assert ffn.m.pw1.inference_fold_cached() is not None
    assert isinstance(ffn.m, FFN)  # untouched


def test_a_frozen_block_folds_with_autograd_on():
    """Eval mode and no parameter requiring grad (a frozen stage): folded
    with autograd on too, the input's gradient that of the unfolded block;
    a parameter that trains turns the fold off."""
    torch.manual_seed(3)
    m = _trained_like(RepDWConv(6))
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    m(x).square().sum().backward()
    ref_out, ref_grad = m(x).detach(), x.grad.clone()
    assert m.inference_fold_cached() is None
    m.requires_grad_(False)
    x.grad = None
    out = m(x)
    out.square().sum().backward()
    fused = m.inference_fold_cached()
    assert fused is not None
    assert not any(p.requires_grad or p.grad is not None
                   for p in fused.parameters())
    assert rel_err(out.detach(), ref_out) <= 1e-5
    assert rel_err(x.grad, ref_grad) <= 1e-5
    m.conv.bn.weight.requires_grad_(True)
    assert m.inference_fold() is None


def test_frozen_stages_fold_while_the_rest_trains(monkeypatch):
    """frozen_stages: the frozen stem and stage fold in a training step
    (eval mode, no parameter requires grad); the loss and the gradients of
    the trained parameters are those of the unfolded network (in float64,
    so that the bound can be tight)."""
    torch.manual_seed(4)
    model = TinyViM(arch='s', out_indices=(0, 1, 2, 3), frozen_stages=1)
    _trained_like(model).double().train()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)

    def step():
        model.zero_grad()
        loss = sum(o.square().mean() for o in model(x))
        loss.backward()
        return loss.detach(), {n: p.grad.clone()
                               for n, p in model.named_parameters()
                               if p.grad is not None}

    loss, grads = step()
    frozen = model._stem_and_stages()[:2]
    folded = [m for part in frozen for m in _folded_blocks(part)]
    assert folded and all(m.inference_fold_cached() is not None
                          for m in folded)
    assert not any(m.inference_fold_cached() is not None
                   for m in _folded_blocks(model) if m not in folded)
    monkeypatch.setattr(FoldsForInference, 'folds_for_inference',
                        lambda self: False)
    ref_loss, ref_grads = step()
    assert grads.keys() == ref_grads.keys() and grads
    assert float((loss - ref_loss).abs()) <= 1e-10 * float(ref_loss)
    # relative to the largest gradient: some are zero in exact arithmetic
    # (biases in front of a training-mode BatchNorm) and only rounding noise
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    worst = max(float((grads[n] - ref_grads[n]).abs().max())
                for n in grads) / scale
    print(f'\nfrozen_stages=1, float64: gradients folded vs unfolded '
          f'max|d| / max|grad| {worst:.2e}')
    assert worst <= 1e-9


def test_eval_refolds_after_changes_through_data():
    """``tensor.data`` changes bypass the version counter (mmengine's
    EMAHook swaps weights that way before validation): ``eval()``, which
    mmengine's loops call after that swap, drops the fold."""
    torch.manual_seed(5)
    model = _trained_like(NETWORKS['tinyvim-s']())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.data.mul_(1.25)  # what EMAHook's .data.copy_ does
        model.eval()
        out = model(x)
    with torch.enable_grad():
        ref = [o.detach() for o in model(x)]
    assert max(rel_err(o, r) for o, r in zip(out, ref)) <= 1e-4
