"""The Triton training-mode BatchNorm2d against ``F.batch_norm``.

On a CUDA machine the compiled kernels run on the GPU, at the backbones'
real shapes too; without CUDA the same kernels run on CPU tensors through
Triton's interpreter (:func:`tests.triton_testing.import_kernels`), on small
shapes. Run this file in its own pytest process (scripts/test.sh), like
tests/test_laplace_kernel.py.
"""
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.triton_testing import CUDA, DEVICE, import_kernels

bk = import_kernels('batchnorm')
bn = importlib.import_module('mmtinyvim.ops.batchnorm')
layers = importlib.import_module('mmtinyvim.models.layers')



def make(shape, dtype=torch.float32, layout='plain', affine=True, mean=0.,
         std=1., seed=0):
    """x, weight, bias (None without affine), running mean / var, and the
    incoming gradient, on DEVICE."""
    g = torch.Generator().manual_seed(seed)
    channels = shape[1]
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean
    x = x.to(DEVICE, dtype)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    weight = bias = None
    if affine:
        weight = (torch.rand(channels, generator=g) + 0.5).to(DEVICE)
        bias = torch.randn(channels, generator=g).to(DEVICE)
    running = (torch.randn(channels, generator=g).to(DEVICE),
               (torch.rand(channels, generator=g) + 0.5).to(DEVICE))
    grad = torch.randn(*shape, generator=g).to(DEVICE, dtype)
    return x, weight, bias, running, grad


def run(backend, x, weight, bias, running, grad, momentum=0.1, eps=1e-5,
        param_dtype=None):
    """Output, gradients (x, weight, bias) and the updated running
    statistics of one training-mode call."""
    x = x.detach().clone().requires_grad_()
    params = [None if t is None else
              t.detach().clone().to(param_dtype or t.dtype).requires_grad_()
              for t in (weight, bias)]
    rm, rv = (t.clone().to(param_dtype or t.dtype) for t in running)
    if backend == 'exact':
        rm, rv = rm.double(), rv.double()
        y = F.batch_norm(x.double(), rm, rv,
                         *[None if p is None else p.double() for p in params],
                         True, momentum, eps)
    else:
        y = bn.batch_norm_train(x, *params, rm, rv, momentum, eps,
                                backend=backend)
    inputs = [x] + [p for p in params if p is not None]
    grads = torch.autograd.grad(y, inputs, grad.to(y.dtype))
    return y, grads, (rm, rv)


def max_abs(a, b):
    return float((a.detach().double() - b.detach().double()).abs().max())


def compare(shape, dtype=torch.float32, layout='plain', affine=True,
            mean=0., std=1., tol=1e-5, against='reference'):
    """Max |d| of y, dx, dweight, dbias, running mean, running var between
    the Triton op and ``against`` (torch in the same dtype, or float64)."""
    inputs = make(shape, dtype, layout, affine, mean, std)
    y, grads, stats = run('triton', *inputs)
    ref, ref_grads, ref_stats = run(against, *inputs)
    assert y.dtype == dtype and y.shape == ref.shape
    assert y.is_contiguous(memory_format=torch.channels_last
                           if layout == 'channels_last' else
                           torch.contiguous_format)
    assert [g.dtype for g in grads] == [g.dtype for g in run(
        'reference', *inputs)[1]]
    errs = dict(y=max_abs(y, ref))
    for name, a, b in zip(('dx', 'dweight', 'dbias'), grads, ref_grads):
        # gradients relative to their scale (float64 sums of float16 values
        # reach hundreds)
        errs[name] = max_abs(a, b) / max(1.0, float(b.abs().max()))
    errs['running_mean'] = max_abs(stats[0], ref_stats[0])
    errs['running_var'] = max_abs(stats[1], ref_stats[1])
    print(f'\nbatchnorm {shape} {dtype} {layout} affine={affine} mean={mean}'
          f' on {DEVICE.type} vs {against}: max|d| ' +
          ', '.join(f'{k} {v:.1e}' for k, v in errs.items()))
    assert max(errs.values()) < tol, errs
    return errs


# ----------------------------------------------------- any device (small) --

ODD = [(1, 3, 5, 7), (2, 5, 13, 11), (3, 4, 1, 9), (5, 2, 3, 1)]


@pytest.mark.parametrize('shape', ODD)
def test_float32_matches_torch(shape):
    compare(shape, tol=1e-5)


@pytest.mark.parametrize('affine', [True, False])
def test_channels_last(affine):
    compare((2, 5, 13, 11), layout='channels_last', affine=affine, tol=1e-5)


def test_no_affine():
    compare((3, 4, 6, 5), affine=False, tol=1e-5)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_against_float64(dtype):
    # float32 statistics, one rounding of y and dx: within an ulp or two of
    # the exact result (|y| reaches about 4 here)
    ulp = 2 ** -10 if dtype == torch.float16 else 2 ** -7
    errs = compare((2, 5, 13, 11), dtype, tol=8 * ulp, against='exact')
    assert errs['running_mean'] < 1e-6 and errs['running_var'] < 1e-5


def test_several_blocks_per_channel(monkeypatch):
    """Small column blocks and tiles: many partials per channel (row and
    column blocks) merged in the element-wise kernels."""
    monkeypatch.setattr(bk, '_MAX_COLS', 16)
    monkeypatch.setattr(bk, '_TILE', 32)
    monkeypatch.setattr(bk, '_TARGET', 64)
    monkeypatch.setattr(bk, '_PART_BLOCK', 4)
    # the interpreter's grid floor on every device (a GPU's, four waves of
    # its multiprocessors, would cut the blocks to one tile each)
    monkeypatch.setattr(bk, '_min_programs', lambda device: 16)
    x = torch.empty(7, 3, 5, 9, device=DEVICE)
    rows, cols, block_rows, n_hb, parts, n_tiles = bk._launch_config(x)
    assert n_hb == 3 and parts > n_hb and parts > 4 and n_tiles > 1
    compare((7, 3, 5, 9), tol=1e-5)


def test_large_mean_is_stable():
    """mean 1e3, std 0.1: naive sums of x and x^2 in float32 lose the
    variance (x^2 ~ 1e6, ulp 0.06, against a variance of 0.01)."""
    errs = compare((4, 3, 8, 9), mean=1e3, std=0.1, tol=1e-3,
                   against='exact')
    # the shift and the per-block mean / M2 keep y to float32 rounding
    assert errs['y'] < 1e-5 and errs['running_var'] < 1e-6


def test_gradcheck_float64():
    x, weight, bias, running, _ = make((2, 3, 2, 3), torch.float64)
    weight, bias = weight.double(), bias.double()
    rm, rv = (t.double() for t in running)
    inputs = [t.detach().requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda a, b, c: bn.batch_norm_train(a, b, c, None, None, 0.1, 1e-5,
                                            backend='triton'), inputs,
        fast_mode=True)
    # with running statistics too (updated at every call)
    bn.batch_norm_train(inputs[0], inputs[1], inputs[2], rm, rv,
                        backend='triton')


def test_strided_and_expanded_gradients():
    """A channel-split view as input and an expanded (stride 0) incoming
    gradient, as ``y.sum().backward()`` gives."""
    x, weight, bias, running, _ = make((2, 6, 5, 4))
    x = x[:, :3].detach().requires_grad_()
    outs = []
    for backend in ('triton', 'reference'):
        xx = x.detach().clone().requires_grad_()
        y = bn.batch_norm_train(xx, weight[:3], bias[:3], None, None,
                                backend=backend)
        (y * torch.arange(3., device=DEVICE)[:, None, None]).sum().backward()
        outs.append((y, xx.grad))
    assert max_abs(outs[0][0], outs[1][0]) < 1e-5
    assert max_abs(outs[0][1], outs[1][1]) < 1e-5


def test_momentum_and_eps_are_used():
    inputs = make((3, 2, 4, 4))
    for momentum, eps in ((0.3, 1e-3), (1.0, 0.5)):
        y, _, stats = run('triton', *inputs, momentum=momentum, eps=eps)
        ref, _, ref_stats = run('reference', *inputs, momentum=momentum,
                                eps=eps)
        assert max_abs(y, ref) < 1e-5
        assert max(max_abs(a, b) for a, b in zip(stats, ref_stats)) < 1e-6


def test_single_value_per_channel_refused():
    x = torch.randn(1, 3, 1, 1, device=DEVICE)
    with pytest.raises(ValueError, match='Expected more than 1 value per '
                       'channel when training'):
        bn.batch_norm_train(x, None, None, None, None, backend='triton')
    module = layers.BatchNorm2d(3).to(DEVICE)
    with pytest.raises(ValueError, match='Expected more than 1 value per '
                       'channel when training') as ours:
        with_backend('triton', module, x)
    with pytest.raises(ValueError) as torchs:
        nn.BatchNorm2d(3).to(DEVICE)(x)
    assert str(ours.value) == str(torchs.value)


def test_custom_op_registration():
    """Schema, fake (meta) implementation, autograd registration and AOT
    dispatch, as torch.library checks them."""
    x, weight, bias, (rm, rv), _ = make((2, 3, 4, 5))
    args = (x.requires_grad_(), weight.requires_grad_(),
            bias.requires_grad_(), rm, rv, 0.1, 1e-5)
    torch.library.opcheck(bk._bn_fwd, args)
    torch.library.opcheck(bk._bn_fwd, (x, None, None, None, None, 0.1, 1e-5))


def test_backend_choice(monkeypatch):
    assert bn.resolve_backend('auto', DEVICE) == (
        'triton' if CUDA else 'reference')
    assert bn.resolve_backend('triton', DEVICE) == 'triton'
    assert bn.resolve_backend('native', DEVICE) == 'native'
    monkeypatch.setenv(bn.ENV_VAR, 'reference')
    assert bn.resolve_backend(None, DEVICE) == 'reference'
    monkeypatch.setenv(bn.ENV_VAR, 'fused')
    with pytest.raises(ValueError, match=r"'fused' \(from environment "
                       r'variable MMTINYVIM_BATCHNORM_BACKEND\); valid: '
                       'auto, triton, native, reference'):
        bn.resolve_backend(None, DEVICE)


def test_auto_never_picks_the_kernels(monkeypatch):
    """What auto means for a map: on CUDA torch.batch_norm for NCHW maps
    (small or large: the kernels stalled whole eager steps), cuDNN's module
    path (reference) for channels-last ones; off CUDA the reference; the
    kernels only when forced. Checked on CPU tensors by making CUDA look
    present."""
    monkeypatch.delenv(bn.ENV_VAR, raising=False)
    small = torch.empty(128, 48, 7, 7)
    large = torch.empty(128, 24, 112, 112)
    cl = torch.empty(128, 48, 56, 56).contiguous(
        memory_format=torch.channels_last)
    assert bn.train_backend_for(small) == 'reference'   # a CPU tensor
    cuda = torch.device('cuda')

    class OnCuda:
        """The map's shape and strides, on a (pretended) CUDA device."""

        def __init__(self, t):
            self.shape, self.device, self.stride = t.shape, cuda, t.stride

    monkeypatch.setattr(bn, 'triton_available', lambda device: True)
    assert bn.train_backend_for(OnCuda(small)) == 'native'
    assert bn.train_backend_for(OnCuda(large)) == 'native'
    assert bn.train_backend_for(OnCuda(cl)) == 'reference'
    # forced: everywhere the backend applies
    assert bn.train_backend_for(small, 'native') == 'native'
    assert bn.train_backend_for(OnCuda(cl), 'native') == 'native'
    assert bn.train_backend_for(small, 'reference') == 'reference'
    monkeypatch.setattr(bn, 'resolve_backend', lambda name, device: name)
    assert bn.train_backend_for(small, 'triton') == 'triton'
    assert bn.train_backend_for(OnCuda(large), 'triton') == 'triton'
    assert bn.train_backend_for(cl, 'triton') == 'reference'
    monkeypatch.setenv(bn.ENV_VAR, 'triton')
    assert bn.train_backend_for(small) == 'triton'


def test_native_backend_matches_torch():
    """``native`` (torch's kernels, cuDNN's skipped) equals F.batch_norm:
    output, gradients and running statistics."""
    x, weight, bias, running, grad = make((3, 4, 5, 6))
    ref = run('reference', x, weight, bias, running, grad)
    ours = run('native', x, weight, bias, running, grad)
    assert max_abs(ours[0], ref[0]) < 1e-6
    for a, b in zip(ours[1] + ours[2], ref[1] + ref[2]):
        assert max_abs(a, b) < 1e-5


def test_bad_inputs_are_refused():
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    with pytest.raises(ValueError, match='x must be a floating'):
        bn.batch_norm_train(x[0], None, None, None, None, backend='triton')
    with pytest.raises(ValueError, match='weight must be a floating tensor '
                       'of 3 values'):
        bn.batch_norm_train(x, torch.ones(4, device=DEVICE), None, None,
                            None, backend='triton')
    with pytest.raises(ValueError, match='both running_mean and running_var'):
        bn.batch_norm_train(x, None, None, torch.zeros(3, device=DEVICE),
                            None, backend='triton')


def test_tracing_uses_the_reference_ops():
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    traced = torch.jit.trace(
        lambda a: bn.batch_norm_train(a, None, None, None, None,
                                      backend='triton'), (x, ))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert 'aten::batch_norm' in kinds
    assert not any(k.startswith('mmtinyvim::') for k in kinds)


# ----------------------------------------------------------- the module --

def with_backend(name, module, x):
    saved = os.environ.get(bn.ENV_VAR)
    os.environ[bn.ENV_VAR] = name
    try:
        return module(x)
    finally:
        if saved is None:
            os.environ.pop(bn.ENV_VAR)
        else:
            os.environ[bn.ENV_VAR] = saved


def counting(monkeypatch):
    calls = []
    kernel = bk.batch_norm_train_triton
    monkeypatch.setattr(bk, 'batch_norm_train_triton',
                        lambda *a: calls.append(a[0].shape) or kernel(*a))
    return calls


def test_module_matches_torch_module(monkeypatch):
    """Training steps of the module through the kernels give torch's
    outputs, gradients, running statistics and batch count; eval mode
    takes torch's path."""
    calls = counting(monkeypatch)
    torch.manual_seed(0)
    ours = layers.BatchNorm2d(4).to(DEVICE)
    theirs = nn.BatchNorm2d(4).to(DEVICE)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    theirs.load_state_dict(ours.state_dict())
    for step in range(2):
        x = torch.randn(3, 4, 5, 6, device=DEVICE) * (step + 1)
        y = with_backend('triton', ours, x)
        ref = theirs(x)
        assert max_abs(y, ref) < 1e-5
        y.square().sum().backward()
        ref.square().sum().backward()
    assert len(calls) == 2
    for (name, a), b in zip(ours.state_dict().items(),
                            theirs.state_dict().values()):
        assert max_abs(a, b) < 1e-5, name
    assert int(ours.num_batches_tracked) == 2
    for a, b in ((ours.weight.grad, theirs.weight.grad),
                 (ours.bias.grad, theirs.bias.grad)):
        assert max_abs(a, b) < 1e-6 * float(b.abs().max())
    ours.eval()
    theirs.eval()
    x = torch.randn(3, 4, 5, 6, device=DEVICE)
    assert max_abs(with_backend('triton', ours, x), theirs(x)) < 1e-6
    assert len(calls) == 2


def test_module_falls_back_where_the_kernels_do_not_apply(monkeypatch):
    calls = counting(monkeypatch)
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    for module in (layers.BatchNorm2d(3, momentum=None),
                   layers.BatchNorm2d(3, track_running_stats=False),
                   layers.BatchNorm2d(3).eval()):
        module.to(DEVICE)
        ref = nn.BatchNorm2d(3, momentum=module.momentum,
                             track_running_stats=module.track_running_stats)
        ref.to(DEVICE).train(module.training)
        assert max_abs(with_backend('triton', module, x), ref(x)) < 1e-6
    # channels-last maps keep torch's path (its NHWC kernels)
    module = layers.BatchNorm2d(3).to(DEVICE)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert max_abs(with_backend('triton', module, cl),
                   nn.BatchNorm2d(3).to(DEVICE)(cl)) < 1e-6
    assert bn.rows_contiguous(x) and bn.rows_contiguous(x[:, 1:])
    assert not bn.rows_contiguous(cl) and bn.rows_contiguous(cl[:, :, :1, :1])
    # reference backend, and auto on CPU
    module = layers.BatchNorm2d(3).to(DEVICE)
    with_backend('reference', module, x)
    if not CUDA:
        with_backend('auto', module, x)
    assert int(module.num_batches_tracked) == (1 if CUDA else 2)
    assert not calls
    with pytest.raises(ValueError, match='expected 4D input'):
        with_backend('triton', module, x[0])


def test_module_native_path_matches_torch_module(monkeypatch):
    calls = []
    native = bn.batch_norm_train_native
    monkeypatch.setattr(bn, 'batch_norm_train_native',
                        lambda *a: calls.append(a[0].shape) or native(*a))
    torch.manual_seed(0)
    ours = layers.BatchNorm2d(4).to(DEVICE)
    theirs = nn.BatchNorm2d(4).to(DEVICE)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, 5, 6, device=DEVICE)
    y = with_backend('native', ours, x)
    ref = theirs(x)
    assert calls == [x.shape] and max_abs(y, ref) < 1e-6
    for (name, a), b in zip(ours.state_dict().items(),
                            theirs.state_dict().values()):
        assert max_abs(a, b) < 1e-6, name


def test_eager_calls_skip_the_custom_op(monkeypatch):
    """Eagerly the kernels run through the autograd.Function (no custom-op
    dispatch); under torch.compile through the custom ops (the forward op in
    dynamo's graph, the backward op where AOTAutograd traces the gradient).
    Both update the running statistics and give torch's gradients."""
    used = []
    ops = {name: getattr(bk, name) for name in ('_bn_fwd', '_bn_bwd')}
    for name, op in ops.items():
        monkeypatch.setattr(bk, name, lambda *a, _op=op, _n=name:
                            used.append(_n) or _op(*a))
    x, weight, bias, running, grad = make((3, 4, 5, 6))
    ref = run('reference', x, weight, bias, running, grad)
    ours = run('triton', x, weight, bias, running, grad)
    assert not used
    assert max_abs(ours[0], ref[0]) < 1e-5
    for a, b in zip(ours[1] + ours[2], ref[1] + ref[2]):
        assert max_abs(a, b) < 1e-4
    # dynamo replays a traced list's mutations over the list, so the forward
    # op is seen in the graph, not through the wrapper
    monkeypatch.setattr(bk, '_bn_fwd', ops['_bn_fwd'])
    graph_ops = []

    def backend(gm, example_inputs):
        graph_ops.extend(str(n.target) for n in gm.graph.nodes
                         if n.op == 'call_function')
        return torch._dynamo.lookup_backend('aot_eager')(gm, example_inputs)

    compiled = torch.compile(
        lambda *a: bn.batch_norm_train(*a, backend='triton'),
        backend=backend, fullgraph=True)
    xc = x.detach().clone().requires_grad_()
    rm, rv = (t.clone() for t in running)
    y = compiled(xc, weight, bias, rm, rv, 0.1, 1e-5)
    y.backward(grad)
    assert 'mmtinyvim.batch_norm_train_fwd.default' in graph_ops, graph_ops
    assert used == ['_bn_bwd']
    assert max_abs(y, ref[0]) < 1e-5 and max_abs(xc.grad, ref[1][0]) < 1e-4
    assert max_abs(rm, ref[2][0]) < 1e-6 and max_abs(rv, ref[2][1]) < 1e-6


def test_module_state_dict_and_sync_conversion():
    conv_bn = layers.ConvBN(3, 4)
    assert isinstance(conv_bn.bn, layers.BatchNorm2d)
    assert list(conv_bn.state_dict()) == [
        'c.weight', 'bn.weight', 'bn.bias', 'bn.running_mean',
        'bn.running_var', 'bn.num_batches_tracked']
    assert list(layers.BatchNorm2d(4).state_dict()) == list(
        nn.BatchNorm2d(4).state_dict())
    layers.BatchNorm2d(4).load_state_dict(nn.BatchNorm2d(4).state_dict(),
                                          strict=True)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(
        nn.Sequential(conv_bn))
    assert type(synced[0].bn) is nn.SyncBatchNorm


def test_backbones_use_the_module():
    from mmtinyvim.models.backbones.mobilemamba import MobileMamba
    from mmtinyvim.models.backbones.tinyvim import TinyViM
    for model in (TinyViM('s'), MobileMamba('t2')):
        norms = [m for m in model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert norms and all(type(m) is layers.BatchNorm2d for m in norms)


def test_compiled_module_matches_eager(monkeypatch):
    """torch.compile of a Conv + BatchNorm training step: the op is one
    node, the running statistics are updated as in eager mode."""
    calls = counting(monkeypatch)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1),
                          layers.BatchNorm2d(4)).to(DEVICE)
    twin = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1),
                         nn.BatchNorm2d(4)).to(DEVICE)
    twin.load_state_dict(model.state_dict())
    monkeypatch.setenv(bn.ENV_VAR, 'triton')
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = torch.randn(2, 3, 5, 6, device=DEVICE)
    out = compiled(x)
    ref = twin(x)
    assert calls, 'the kernel did not run'
    assert max_abs(out, ref) < 1e-5
    # a loss whose gradient is not a cancellation (sum(y^2) of a plain
    # batch norm is nearly constant)
    weights = torch.randn(out.shape, device=DEVICE)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    assert max_abs(model[0].weight.grad, twin[0].weight.grad) < \
        1e-5 * float(twin[0].weight.grad.abs().max())
    for (name, a), b in zip(model.state_dict().items(),
                            twin.state_dict().values()):
        assert max_abs(a, b) < 1e-5, name


# the kernels through Triton's compiler for an H100 (sm_90a), CUDA or not:
# in a fresh process, as TRITON_INTERPRET=1 makes them interpreted here
COMPILE = textwrap.dedent('''
    import os, subprocess, tempfile
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from mmtinyvim.ops.batchnorm import triton_kernels as k
    ptxas = os.path.join(os.path.dirname(triton.__file__), 'backends',
                         'nvidia', 'bin', 'ptxas')

    def build(fn, consts, x='*fp16', floats=()):
        sig = {n: 'constexpr' if n in consts else
               (x if n in ('x_ptr', 'y_ptr', 'g_ptr', 'dx_ptr') else '*fp32')
               if n.endswith('_ptr') else 'fp32' if n in floats else 'i32'
               for n in fn.arg_names}
        # as a launch on an NCHW map with H*W a multiple of 16 specialises:
        # unit position strides, the other strides, H*W and the pointers
        # divisible by 16
        consts = dict(consts, **{n: 1 for n in fn.arg_names
                                 if n in ('sxs', 'sys', 'sgs', 'sds')})
        attrs = {(i, ): [['tt.divisibility', 16]]
                 for i, n in enumerate(fn.arg_names) if n not in consts and
                 (n.endswith('_ptr') or n == 'HW' or n[:1] == 's')}
        src = ASTSource(fn=fn, signature=sig, constexprs={
            (fn.arg_names.index(n), ): v for n, v in consts.items()},
            attrs=attrs)
        ptx = triton.compile(src, target=GPUTarget('cuda', 90, 32),
                             options=dict(num_warps=8)).asm['ptx']
        vector = ptx.count('ld.global.v4')
        with tempfile.NamedTemporaryFile('w', suffix='.ptx') as f:
            f.write(ptx)
            f.flush()
            out = subprocess.run([ptxas, '--gpu-name', 'sm_90a', '-v',
                                  f.name, '-o', os.devnull],
                                 capture_output=True, text=True, check=True)
        print(fn.__name__, x, f'{vector} vector loads', ' '.join(
            line.split(':', 1)[-1].strip() for line in out.stderr.splitlines()
            if 'spill' in line or 'registers' in line))

    for x in ('*fp16', '*bf16', '*fp32'):
        tile = dict(R=4, B=1024, ACC=tl.float32)
        build(k._bn_stats_kernel, tile, x)
        build(k._bn_fwd_kernel, dict(HAS_W=True, HAS_B=True, TRACK=True,
                                     PB=256, **tile), x, ('momentum', 'eps'))
        build(k._bn_bwd_sums_kernel, tile, x)
        build(k._bn_bwd_dx_kernel, dict(HAS_W=True, PB=256, **tile), x,
              ('count', ))
''')


def test_kernels_compile_for_hopper():
    """The compiled (not interpreted) kernels build for sm_90a through
    Triton's own ptxas without spilling registers, with vector loads of the
    map's rows: the interpreter accepts code the compiler refuses, and
    says nothing of the loads."""
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
    except ImportError as exc:
        pytest.skip(f'this triton has no ASTSource/GPUTarget API: {exc}')
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    repo = Path(__file__).resolve().parents[1]
    env['PYTHONPATH'] = os.pathsep.join(
        [str(repo)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                       if p])
    result = subprocess.run([sys.executable, '-c', COMPILE], cwd=repo,
                            env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    print('\n' + '\n'.join(lines))
    assert len(lines) == 12
    assert all('0 bytes spill stores' in line for line in lines), lines
    # the map's rows are loaded 16 bytes at a time
    assert all(' 0 vector loads' not in line for line in lines), lines


# ------------------------------------------------------ CUDA: real shapes --

# TinyViM-S and MobileMamba-B1 training shapes at batch 128 (the largest
# planes, the most channels, 7x7 and 4x4 maps), and a detection-sized map
# at batch 2
CUDA_SHAPES = [(128, 48, 56, 56), (128, 24, 112, 112), (128, 192, 56, 56),
               (128, 25, 128, 128), (128, 224, 7, 7), (128, 672, 14, 14),
               (128, 1504, 4, 4), (2, 48, 200, 336)]


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('layout', ['plain', 'channels_last'])
@pytest.mark.parametrize('shape', CUDA_SHAPES, ids=str)
def test_cuda_real_shapes_float16(shape, layout):
    errs = compare(shape, torch.float16, layout, tol=1e-2, against='exact')
    assert errs['y'] <= 8 * 2 ** -10


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('shape', CUDA_SHAPES[:2], ids=str)
def test_cuda_real_shapes_float32(shape):
    compare(shape, torch.float32, tol=1e-4, against='exact')


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
def test_cuda_graph_capture_and_inductor():
    x, weight, bias, (rm, rv), _ = make((16, 48, 28, 28), torch.float16)
    rm_ref, rv_ref = rm.clone(), rv.clone()
    ref = bn.batch_norm_train(x, weight, bias, rm_ref, rv_ref,
                              backend='triton')
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        # warm-up (compilation) outside the capture, on scratch statistics
        bn.batch_norm_train(x, weight, bias, rm.clone(), rv.clone(),
                            backend='triton')
        with torch.cuda.graph(graph):
            captured = bn.batch_norm_train(x, weight, bias, rm, rv,
                                           backend='triton')
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, ref)
    assert torch.equal(rm, rm_ref) and torch.equal(rv, rv_ref)
    # inductor: the op stays one node, fed by the compiled graph
    module = layers.BatchNorm2d(48).cuda()
    twin = nn.BatchNorm2d(48).cuda()
    compiled = torch.compile(module, fullgraph=True)
    out = compiled(x)
    assert out.dtype == torch.float16 and int(module.num_batches_tracked) == 1
    assert max_abs(out, twin(x)) < 8 * 2 ** -10
    for (name, a), b in zip(module.state_dict().items(),
                            twin.state_dict().values()):
        assert max_abs(a, b) < 1e-5, name


@pytest.mark.skipif(not CUDA, reason='the compiled kernels need CUDA')
@pytest.mark.parametrize('family', ['tinyvim', 'mobilemamba'])
def test_cuda_backbone_step_under_autocast(monkeypatch, family):
    """An AMP training step of TinyViM-S / MobileMamba-T2 gives, with the
    kernels, the torch path's outputs, gradients and running statistics to
    float16 rounding; every BatchNorm2d ran the kernels."""
    from mmtinyvim.models.backbones.mobilemamba import MobileMamba
    from mmtinyvim.models.backbones.tinyvim import TinyViM
    calls = counting(monkeypatch)
    torch.manual_seed(0)
    model = (TinyViM('s') if family == 'tinyvim' else
             MobileMamba('t2')).cuda().train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3, 224, 224, device='cuda')
    results = {}
    for backend in ('triton', 'reference'):
        monkeypatch.setenv(bn.ENV_VAR, backend)
        model.load_state_dict(start)
        model.zero_grad()
        with torch.autocast('cuda', torch.float16):
            outs = model(x)
        sum(o.float().square().mean() for o in outs).backward()
        results[backend] = ([o.float() for o in outs],
                            [p.grad.clone() for p in model.parameters()
                             if p.grad is not None],
                            {k: v.clone() for k, v in
                             model.state_dict().items()})
    n_norms = sum(isinstance(m, layers.BatchNorm2d) for m in model.modules())
    assert len(calls) == n_norms
    (outs, grads, state), (ref_outs, ref_grads, ref_state) = \
        results['triton'], results['reference']
    assert max(max_abs(a, b) / float(b.abs().max())
               for a, b in zip(outs, ref_outs)) < 1e-2
    scale = max(float(b.abs().max()) for b in ref_grads)
    assert max(max_abs(a, b) for a, b in zip(grads, ref_grads)) < \
        2e-2 * scale
    for key, value in ref_state.items():
        if key.endswith(('running_mean', 'running_var')):
            assert max_abs(state[key], value) < \
                1e-2 * max(1.0, float(value.abs().max())), key
        elif key.endswith('num_batches_tracked'):
            assert int(state[key]) == int(value) == 1, key
