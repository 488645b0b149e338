"""MobileMamba backbone, head and Haar wavelet against the official network
(golden data) and the plugin's conventions."""
import math

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from mmtinyvim.models.backbones.mobilemamba import (
    MobileMamba, checkpoint_filter_fn, convert_official_classifier,
    mrffi_channel_split, to_official_classifier)
from mmtinyvim.models.heads.mobilemamba_head import MobileMambaClsHead
from mmtinyvim.models.wavelet import (haar_analysis, haar_filters,
                                      haar_synthesis)
from mmtinyvim.registry import MODELS
from tests.golden import (dense_errors, load_golden, make_input, manifest,
                          plain_network, rel_err, weights_for)

VARIANTS = ['T2', 'B1']
_CACHE = {}


def cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def golden(variant):
    return cached(('golden', variant),
                  lambda: load_golden(f'mobilemamba_{variant}'))


def golden_weights(variant, form):
    return cached(('weights', variant, form),
                  lambda: weights_for(golden(variant), form))


def golden_backbone(variant, **kwargs):
    kwargs.setdefault('out_indices', (0, 1, 2, 3))
    model = MobileMamba(arch=variant, **kwargs)
    model.load_state_dict(golden_weights(variant, 'backbone_manifest'),
                          strict=True)
    return model.eval()


def build_classifier(variant, scan_backend=None, distillation=False):
    arch = variant.lower()
    return PRETRAIN_MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MobileMamba', arch=arch, out_indices=(3, ),
                      scan_backend=scan_backend),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='MobileMambaClsHead', num_classes=1000,
                  in_channels=MobileMamba.arch_zoo[arch]['embed_dims'][-1],
                  distillation=distillation)))


def golden_classifier(variant, scan_backend=None):
    model = build_classifier(variant, scan_backend)
    model.load_state_dict(
        convert_official_classifier(golden_weights(variant, 'manifest')),
        strict=True)
    return model.eval()


def save_checkpoint(tmp_path, state_dict, name='ckpt.pth', wrapper='net'):
    path = tmp_path / name
    torch.save({wrapper: state_dict} if wrapper else state_dict, path)
    return str(path)


def pretrained(path, prefix=None, **kwargs):
    init_cfg = dict(type='Pretrained', checkpoint=path)
    if prefix:
        init_cfg['prefix'] = prefix
    kwargs.setdefault('arch', 't2')
    return MobileMamba(init_cfg=init_cfg, **kwargs)


def rand_image(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def max_rel(outs, refs):
    return max(float((o - r).abs().max() / r.std())
               for o, r in zip(outs, refs))


# ---------------------------------------------------------------- Haar -----

def test_haar_filters_equal_the_official_pywt_construction():
    # PyWavelets' db1 coefficients, and MobileMamba's create_wavelet_filter
    # rule: analysis uses the reversed decomposition filters, synthesis the
    # reconstruction filters reversed and flipped back; a 2-D filter is
    # outer(filter along H, filter along W) for (lo,lo), (hi,lo), (lo,hi),
    # (hi,hi).
    s = 1 / math.sqrt(2)
    dec_lo, dec_hi = [s, s], [-s, s]
    rec_lo, rec_hi = [s, s], [s, -s]

    def bank(lo, hi):
        lo, hi = torch.tensor(lo), torch.tensor(hi)
        return torch.stack([torch.outer(a, b) for a, b in
                            ((lo, lo), (hi, lo), (lo, hi), (hi, hi))])

    official_dec = bank(dec_lo[::-1], dec_hi[::-1])
    official_rec = bank(torch.tensor(rec_lo[::-1]).flip(0).tolist(),
                        torch.tensor(rec_hi[::-1]).flip(0).tolist())
    analysis, synthesis = haar_filters(3)
    assert analysis.shape == synthesis.shape == (12, 1, 2, 2)
    assert analysis.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(analysis[4 * c:4 * c + 4, 0], official_dec)
        assert torch.allclose(synthesis[4 * c:4 * c + 4, 0], official_rec)
    # band 1 is the high-pass along H: top row minus bottom row
    assert torch.allclose(analysis[1, 0], torch.tensor([[.5, .5],
                                                         [-.5, -.5]]))


@pytest.mark.parametrize('size', [(6, 10), (7, 9)])
def test_haar_round_trip_is_exact_and_pads_odd_sizes(size):
    x = rand_image(2, 3, *size)
    analysis, synthesis = haar_filters(3)
    bands = haar_analysis(x, analysis)
    assert bands.shape == (2, 3, 4, -(-size[0] // 2), -(-size[1] // 2))
    assert torch.allclose(bands[:, :, 0, 0, 0],
                          x[:, :, :2, :2].sum((2, 3)) / 2, atol=1e-6)
    back = haar_synthesis(bands, synthesis, size)
    assert back.shape == x.shape
    assert torch.allclose(back, x, atol=1e-6)


def test_haar_runs_in_float32_under_autocast():
    x = rand_image(1, 2, 8, 8)
    analysis, synthesis = haar_filters(2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bands = haar_analysis(x.bfloat16(), analysis)
        back = haar_synthesis(bands.bfloat16(), synthesis, (8, 8))
    assert bands.dtype == back.dtype == torch.float32
    assert torch.allclose(back, x.bfloat16().float(), atol=1e-2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        exact = haar_synthesis(haar_analysis(x, analysis), synthesis, (8, 8))
    assert torch.allclose(exact, x, atol=1e-6)


def test_golden_model_with_haar_filters_takes_the_elementwise_path():
    # the golden weights carry random wavelet filters (convolution form);
    # with the analytic ones loaded the element-wise form runs and agrees
    state = dict(golden_weights('T2', 'backbone_manifest'))
    for key in state:
        if key.endswith('wt_filter'):
            state[key] = haar_filters(state[key].shape[0] // 4)[0]
    model = MobileMamba(arch='T2', out_indices=(0, 1, 2, 3),
                        scan_backend='torch')
    model.load_state_dict(state, strict=True)
    model.eval()
    wavelets = [m for m in model.modules() if hasattr(m, 'analytic_haar')]
    assert wavelets and all(m.analytic_haar for m in wavelets)
    x = rand_image(1, 3, 97, 131)
    with torch.no_grad():
        fast = model(x)
        for m in wavelets:
            m.analytic_haar = False
        conv = model(x)
    err = max_rel(fast, conv)
    print(f'\nMobileMamba-T2 element-wise vs convolution Haar: max|d|/std '
          f'{err:.2e}')
    assert err <= 1e-5
    assert not any(m.analytic_haar for m in golden_backbone('T2').modules()
                   if hasattr(m, 'analytic_haar'))


# ----------------------------------------------------- golden parity -------

@pytest.mark.parametrize('variant', VARIANTS)
def test_state_dict_matches_official_manifest(variant):
    g = golden(variant)
    ours = [(k, tuple(v.shape), str(v.dtype))
            for k, v in MobileMamba(arch=variant).state_dict().items()]
    assert ours == manifest(g, 'backbone_manifest')
    cls = [(k, tuple(v.shape), str(v.dtype))
           for k, v in to_official_classifier(
               build_classifier(variant).state_dict()).items()]
    assert cls == manifest(g, 'manifest')


@pytest.mark.parametrize('variant', VARIANTS)
def test_dense_parity(variant):
    g = golden(variant)
    assert g['out_indices'] == [0, 1, 2, 3]
    model = golden_backbone(variant, scan_backend='torch')
    for spec, samples in zip(g['dense_input_specs'], g['dense_samples']):
        with torch.no_grad():
            outs = model(make_input(spec))
        errs = dense_errors(outs, samples)
        print(f'\nMobileMamba-{variant} dense {spec["shape"]} torch scan: '
              f'max|d|/std per map {[f"{e:.2e}" for e in errs]}')
        assert max(errs) <= 1e-3


@pytest.mark.parametrize('variant', VARIANTS)
def test_classifier_parity(variant):
    g = golden(variant)
    x = make_input(g['cls_input_spec'])
    assert x.shape[0] == 2  # also checks the per-sample bidirectional merge
    for backend, tol in (('reference', 1e-4), ('torch', 1e-3)):
        model = golden_classifier(variant, scan_backend=backend)
        with torch.no_grad():
            logits = model(x, mode='tensor')
        err = rel_err(logits, g['cls_logits'])
        print(f'\nMobileMamba-{variant} logits, {backend} scan: '
              f'max|d|/std {err:.2e}')
        assert err <= tol


def haar_numel(model):
    """The Haar filters: frozen parameters in the official code (counted in
    its sizes), buffers here."""
    return sum(b.numel() for n, b in model.named_buffers()
               if n.endswith(('.wt_filter', '.iwt_filter')))


def official_count(model):
    return sum(p.numel() for p in model.parameters()) + haar_numel(model)


@pytest.mark.parametrize('variant', VARIANTS)
def test_param_count_matches_official(variant):
    g = golden(variant)
    model = build_classifier(variant)
    total = official_count(model)
    assert abs(total / 1e6 - g['params_M']['total_M']) < 1e-6
    frozen = sum(p.numel() for p in model.parameters()
                 if not p.requires_grad) + haar_numel(model)
    assert frozen == g['params_M']['frozen_params_numel']
    backbone = official_count(model.backbone)
    assert abs(backbone / 1e6 - g['params_M']['without_head_M']) < 1e-6


@pytest.mark.parametrize('arch,published_m', [
    ('t2', 8.8), ('t4', 14.2), ('s6', 15.0), ('b1', 17.1), ('b2', 17.1),
    ('b4', 17.1)])
def test_all_variants_have_the_published_size(arch, published_m):
    model = build_classifier(arch)
    assert round(official_count(model) / 1e6, 1) == published_m


def as_official_parameters(model):
    """``model`` with its Haar filters re-registered as frozen parameters,
    the official (and this package's former) layout."""
    for module in model.modules():
        if 'wt_filter' in module._buffers:
            for name in ('wt_filter', 'iwt_filter'):
                value = module._buffers.pop(name)
                module.register_parameter(
                    name, nn.Parameter(value, requires_grad=False))
    return model


def test_haar_filter_buffers_keep_the_state_dict_keys_and_order():
    model = MobileMamba(arch='t2')
    assert not [n for n, _ in model.named_parameters() if 'wt_filter' in n]
    keys = list(model.state_dict())
    assert any(k.endswith('.wt_filter') for k in keys)
    reference = as_official_parameters(MobileMamba(arch='t2'))
    assert keys == list(reference.state_dict())
    # an official-layout state dict loads strictly, in both directions
    model.load_state_dict(reference.state_dict(), strict=True)
    reference.load_state_dict(model.state_dict(), strict=True)


def test_optimizer_builder_does_not_warn_about_haar_filters(
        logged_warnings):
    from mmengine.optim import build_optim_wrapper

    build_optim_wrapper(MobileMamba(arch='t2'), dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.)))
    assert not [m for m in logged_warnings if 'requires_grad' in m]


@pytest.mark.parametrize('arch,splits', [
    ('t2', [(112, 28, 4), (192, 54, 26), (224, 110, 34)]),
    ('t4', [(144, 32, 0), (256, 73, 39), (272, 134, 42)]),
    ('s6', [(160, 32, 0), (272, 76, 36), (272, 134, 42)]),
    ('b1', [(160, 40, 0), (256, 75, 45), (272, 134, 42)])])
def test_mrffi_channel_split(arch, splits):
    cfg = MobileMamba.arch_zoo[arch]
    assert [mrffi_channel_split(*args) for args in zip(
        cfg['embed_dims'], cfg['global_ratios'], cfg['local_ratios'])] == \
        splits
    model = MobileMamba(arch=arch)
    assert model.blocks3[-1].mixer.m.attn.split_sizes == splits[2]


def test_drop_path_of_the_last_block():
    # each variant's resolution lives in arch_zoo alone; the configs are
    # checked against it (tests/test_zoo_records.py)
    assert MobileMamba(arch='B1').blocks3[-1].drop_path.drop_prob == \
        pytest.approx(0.03)
    assert isinstance(MobileMamba(arch='t2').blocks3[-1].drop_path,
                      nn.Identity)


def test_official_classifier_conversion_round_trip():
    state = golden_weights('T2', 'manifest')
    converted = convert_official_classifier(state)
    assert 'backbone.blocks3.4.ffn1.m.pw2.bn.bias' in converted
    assert 'head.l.weight' in converted and 'head.bn.weight' in converted
    back = to_official_classifier(converted)
    assert list(back) == list(state)
    with_dist = dict(state, **{'head_dist.l.weight': torch.zeros(1)})
    assert 'head.head_dist.l.weight' in convert_official_classifier(with_dist)
    with pytest.raises(ValueError, match="unexpected keys \\['norm.weight'"):
        convert_official_classifier(dict(state, **{'norm.weight': 0}))
    with pytest.raises(ValueError, match='unexpected keys'):
        to_official_classifier({'neck.x': torch.zeros(1)})


# ------------------------------------------------------------ deploy -------

@pytest.mark.parametrize('variant', VARIANTS)
def test_deploy_equals_eval(variant):
    g = golden(variant)
    model = plain_network(golden_classifier(variant,
                                            scan_backend='reference'))
    x = make_input(g['cls_input_spec'])
    with torch.no_grad():
        ref = model(x, mode='tensor')
        model.backbone.switch_to_deploy()
        model.head.switch_to_deploy()
        model.backbone.switch_to_deploy()  # idempotent
        model.head.switch_to_deploy()
        out = model(x, mode='tensor')
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for m in model.modules())
    err = max_rel([out], [ref])
    print(f'\nMobileMamba-{variant} deploy vs eval logits: max|d|/std '
          f'{err:.2e}')
    assert err <= 1e-4


def test_deploy_equals_eval_dense_odd_size():
    model = plain_network(golden_backbone('T2', scan_backend='reference'))
    x = rand_image(1, 3, 97, 131)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    err = max_rel(out, ref)
    print(f'\nMobileMamba-T2 dense deploy vs eval: max|d|/std {err:.2e}')
    assert err <= 1e-4
    # residual depthwise Conv-BNs became plain convs
    assert isinstance(model.blocks1[0].dw0, nn.Conv2d)
    assert isinstance(model.blocks2[0][0], nn.Conv2d)


# --------------------------------------------------- shapes and modes ------

def test_default_outputs_are_the_detection_ones():
    model = MobileMamba(arch='t2').eval()
    assert model.out_indices == (1, 2, 3)
    assert model.out_channels == (144, 272, 368)
    assert model.out_strides == (16, 32, 64)
    with torch.no_grad():
        outs = model(rand_image(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 144, 4, 6), (1, 272, 2, 3),
                                              (1, 368, 1, 2)]


def test_selected_and_negative_out_indices():
    model = MobileMamba(arch='t2', out_indices=(-4, 2)).eval()
    assert model.out_indices == (0, 2)
    assert model.out_channels == (144, 272)
    with torch.no_grad():
        outs = model(rand_image(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 144, 4, 4), (1, 272, 2, 2)]


def test_odd_input_size():
    model = MobileMamba(arch='t2', out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(rand_image(1, 3, 321, 479))
    assert [tuple(o.shape[2:]) for o in outs] == [
        (math.ceil(321 / s), math.ceil(479 / s)) for s in (16, 16, 32, 64)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_batch_equals_per_sample_in_eval():
    model = golden_backbone('T2', scan_backend='torch')
    x = rand_image(2, 3, 64, 96)
    with torch.no_grad():
        batched = model(x)
        single = [model(x[i:i + 1]) for i in range(2)]
    for j, out in enumerate(batched):
        ref = torch.cat([s[j] for s in single])
        assert float((out - ref).abs().max() / ref.std()) < 1e-5


def test_drop_path_training_backward():
    model = MobileMamba(arch='b1', out_indices=(1, 2, 3)).train()
    assert model.drop_path_rate == pytest.approx(0.03)
    outs = model(rand_image(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for _, p in trainable)
    assert all(p.grad is None for n, p in model.named_parameters()
               if n.endswith(('wt_filter', 'iwt_filter')))


def test_autocast_forward():
    model = golden_backbone('T2', scan_backend='torch')
    x = rand_image(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
    for out, r in zip(outs, ref):
        assert torch.isfinite(out).all()
        assert float((out.float() - r).abs().max() / r.std()) < 0.2


def test_scan_backend_argument_and_environment(monkeypatch):
    # None stays None: every scan reads MMTINYVIM_SCAN_BACKEND when it runs
    model = MobileMamba(arch='t2', scan_backend='reference')
    assert model.scan_backend == 'reference'
    assert model.blocks1[0].mixer.m.attn.global_op.global_atten \
        .scan_backend == 'reference'
    model.scan_backend = 'torch'
    assert model.blocks3[-1].mixer.m.attn.global_op.global_atten \
        .scan_backend == 'torch'
    with pytest.raises(ValueError, match='Unknown selective-scan backend'):
        MobileMamba(arch='t2', scan_backend='cuda')


# ----------------------------------------------------- training modes ------

def test_frozen_stages():
    model = MobileMamba(arch='t2', frozen_stages=2)
    model.train()
    for name in ('patch_embed', 'blocks1', 'blocks2'):
        stage = getattr(model, name)
        assert not any(p.requires_grad for p in stage.parameters()), name
        assert not any(m.training for m in stage.modules()), name
    trainable = [p.requires_grad for n, p in model.blocks3.named_parameters()
                 if not n.endswith('wt_filter')]
    assert all(trainable)
    assert all(m.training for m in model.blocks3.modules())
    stem_only = MobileMamba(arch='t2', frozen_stages=0).train()
    assert not any(p.requires_grad for p in stem_only.patch_embed.parameters())
    assert stem_only.blocks1[0].dw0.m.c.weight.requires_grad
    assert stem_only.blocks1.training


def test_norm_eval():
    model = MobileMamba(arch='t2', norm_eval=True).train()
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.blocks2[1].conv1.c.training
    assert all(p.requires_grad for n, p in model.named_parameters()
               if 'wt_filter' not in n)


# ---------------------------------------------------------- the head -------

def test_head_distillation_eval_mean_deploy_and_loss():
    from mmpretrain.structures import DataSample
    head = MobileMambaClsHead(num_classes=5, in_channels=8,
                              distillation=True)
    assert [k for k in head.state_dict() if k.startswith('head_dist')] == [
        f'head_dist.{name}' for name in (
            'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var',
            'bn.num_batches_tracked', 'l.weight', 'l.bias')]
    feats = (rand_image(4, 8), )
    samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
    losses = head.loss(feats, samples)
    losses['loss'].backward()
    assert head.head_dist.l.weight.grad is not None
    head.eval()
    for bn in (head.bn, head.head_dist.bn):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        main, dist = head.forward_heads(feats)
        mean = head(feats)
        assert torch.allclose(mean, (main + dist) / 2)
        head.switch_to_deploy()
        head.switch_to_deploy()
        assert torch.allclose(head(feats), mean, atol=1e-5)
    assert isinstance(head.head_dist, nn.Linear)


def test_head_checks_its_input_and_arguments():
    head = MobileMambaClsHead(num_classes=5, in_channels=8)
    with pytest.raises(ValueError, match='GlobalAveragePooling'):
        head((torch.zeros(2, 8, 3, 3), ))
    with pytest.raises(ValueError, match='num_classes must be a positive'):
        MobileMambaClsHead(num_classes=0, in_channels=8)
    with pytest.raises(TypeError):
        MobileMambaClsHead(num_classes=5, in_channel=8)


# ---------------------------------------------------------- loading --------

def test_load_official_classification_checkpoint(tmp_path):
    state = golden_weights('T2', 'manifest')
    path = save_checkpoint(tmp_path, state, wrapper='net_E')
    model = pretrained(path)
    model.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_flat_dense_checkpoint(tmp_path):
    state = golden_weights('B1', 'backbone_manifest')
    model = pretrained(save_checkpoint(tmp_path, state, wrapper=None),
                       arch='b1')
    model.init_weights()
    assert all(torch.equal(v, state[k])
               for k, v in model.state_dict().items())


def test_load_mmpretrain_classifier_checkpoint_with_prefix(tmp_path):
    state = convert_official_classifier(golden_weights('T2', 'manifest'))
    path = save_checkpoint(tmp_path, state, wrapper='state_dict')
    model = pretrained(path, prefix='backbone.')
    model.init_weights()
    assert torch.equal(model.patch_embed[0].c.weight,
                       state['backbone.patch_embed.0.c.weight'])
    with pytest.raises(RuntimeError, match="starts with prefix 'neck.'"):
        pretrained(path, prefix='neck.').init_weights()


@pytest.mark.parametrize('source,form,message', [
    ('tinyvim_S', 'backbone_manifest',
     '804 unexpected keys: network.0.0.layer_scale'),
    ('mobilemamba_B1', 'manifest', 'shape mismatches: patch_embed.0.c.weight'),
])
def test_checkpoint_of_other_model_is_refused(tmp_path, source, form,
                                              message):
    state = weights_for(load_golden(source), form)
    model = pretrained(save_checkpoint(tmp_path, state))
    with pytest.raises(RuntimeError) as info:
        model.init_weights()
    assert message in str(info.value)
    assert 'Is it a checkpoint of this family and variant?' in \
        str(info.value)


def test_checkpoint_filter_fn_drops_only_the_classifier():
    model = MobileMamba(arch='t2')
    state = {'head.l.weight': 1, 'head_dist.bn.bias': 2,
             'blocks1.0.dw0.m.c.weight': 3, 'headless.x': 4}
    assert checkpoint_filter_fn(state, model) == {
        'blocks1.0.dw0.m.c.weight': 3, 'headless.x': 4}
    model.switch_to_deploy()
    with pytest.raises(RuntimeError, match='before switch_to_deploy'):
        checkpoint_filter_fn(state, model)


# ------------------------------------------------------- bad inputs --------

@pytest.mark.parametrize('kwargs,error,message', [
    (dict(arch='t3'), ValueError,
     "Unknown MobileMamba arch 't3'; valid: t2, t4, s6, b1, b2, b4"),
    (dict(arch=3), TypeError, 'arch must be a name or a dict'),
    (dict(arch=dict(embed_dims=[64, 128, 256])), ValueError,
     "missing \\['depths'"),
    (dict(arch=dict(MobileMamba.arch_zoo['t2'], heads=4)), ValueError,
     "unknown \\['heads'\\]"),
    (dict(arch=dict(MobileMamba.arch_zoo['t2'], depths=[1, 2])), ValueError,
     "arch\\['depths'\\] must be 3 values"),
    (dict(arch=dict(MobileMamba.arch_zoo['t2'], embed_dims=[24, 32, 48],
                    global_ratios=[1.0, 0.7, 0.6])), ValueError,
     'global_ratio 1.0 gives 32 global channels'),
    (dict(out_indices=(4, )), ValueError,
     'out_indices \\[4\\] out of range; valid indices are \\[-4, 3\\]'),
    (dict(out_indices=(1, -3)), ValueError, 'name an output twice'),
    (dict(out_indices=()), ValueError, 'non-empty sequence'),
    (dict(frozen_stages=4), ValueError, 'frozen_stages must be an int in '
     '\\[-1, 3\\], got 4'),
    (dict(frozen_stages=-2), ValueError, 'frozen_stages must be an int'),
    (dict(drop_path_rate=1.0), ValueError, 'drop_path_rate must be in'),
    (dict(scan_backend='cuda'), ValueError,
     'Unknown selective-scan backend'),
    (dict(init_cfg=dict(type='Pretrained', path='x.pth')), ValueError,
     "unknown keys \\['path'\\], checkpoint missing"),
    (dict(out_indice=(1, )), TypeError, 'out_indice'),
])
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault('arch', 't2')
    with pytest.raises(error, match=message):
        MobileMamba(**kwargs)


def test_misspelled_argument_through_registry():
    with pytest.raises(TypeError, match='frozen_stage'):
        MODELS.build(dict(type='MobileMamba', arch='t2', frozen_stage=1))


def test_custom_arch():
    arch = dict(embed_dims=[32, 64, 96], depths=[1, 1, 1],
                global_ratios=[0.5, 0.5, 0.5], local_ratios=[0.25, 0.25, 0.25],
                kernel_sizes=[3, 3, 3], ssm_ratio=1)
    model = MobileMamba(arch=arch, out_indices=(0, 1, 2, 3)).eval()
    assert model.arch_name == 'custom'
    assert model.drop_path_rate == 0
    with torch.no_grad():
        outs = model(rand_image(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 32, 64, 96]


@pytest.mark.parametrize('shape,message', [
    ((3, 64, 64), 'expects a 4-D image batch \\(N, 3, H, W\\), got a tensor '
     'of shape \\(3, 64, 64\\)'),
    ((1, 1, 64, 64), 'expects a 4-D image batch'),
    ((1, 3, 31, 64), 'needs H and W >= 32, got 31x64'),
])
def test_bad_images(shape, message):
    model = MobileMamba(arch='t2').eval()
    with pytest.raises(ValueError, match='MobileMamba ' + message):
        model(torch.zeros(shape))
