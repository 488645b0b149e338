"""TinyViM backbone and classifier: parity with the official code (golden
data), deployment folding, checkpoint loading and argument checking."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

import mmtinyvim  # noqa: F401  (registers TinyViM and TinyViMClsHead)
from mmtinyvim.models.backbones.tinyvim import (TinyViM, checkpoint_filter_fn,
                                                convert_official_classifier,
                                                to_official_classifier)
from mmtinyvim.models.heads.tinyvim_head import TinyViMClsHead
from mmtinyvim.registry import MODELS
from tests.golden import (dense_errors, load_golden, make_input, manifest,
                          plain_network, rel_err, weights_for)

VARIANTS = ['S', 'B']
_GOLDEN = {}


def golden(variant):
    if variant not in _GOLDEN:
        _GOLDEN[variant] = load_golden(f'tinyvim_{variant}')
    return _GOLDEN[variant]


def golden_backbone(variant, **kwargs):
    model = TinyViM(variant, **kwargs)
    model.load_state_dict(weights_for(golden(variant), 'backbone_manifest'))
    return model.eval()


def build_classifier(variant, scan_backend=None, distillation=True):
    widths = TinyViM.arch_zoo[variant.lower()]['widths']
    return PRETRAIN_MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TinyViM', arch=variant, out_indices=(3, ),
                      scan_backend=scan_backend),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='TinyViMClsHead', num_classes=1000,
                  in_channels=widths[-1], distillation=distillation)))


def save_checkpoint(tmp_path, state_dict, name='ckpt.pth', wrapper='model'):
    path = tmp_path / name
    torch.save({wrapper: state_dict, 'epoch': 3}, path)
    return str(path)


def pretrained(path, prefix=None, **kwargs):
    cfg = dict(type='Pretrained', checkpoint=path)
    if prefix:
        cfg['prefix'] = prefix
    model = TinyViM('s', init_cfg=cfg, **kwargs)
    model.init_weights()
    return model


def rand_image(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- parity --

@pytest.mark.parametrize('variant', VARIANTS)
def test_state_dict_matches_official_manifest(variant):
    ours = [(k, tuple(v.shape), str(v.dtype))
            for k, v in TinyViM(variant).state_dict().items()]
    assert ours == manifest(golden(variant), 'backbone_manifest')


@pytest.mark.parametrize('variant', VARIANTS)
def test_dense_parity(variant):
    backend, tol = 'torch', 1e-3
    g = golden(variant)
    model = golden_backbone(variant, scan_backend=backend)
    for spec, samples in zip(g['dense_input_specs'], g['dense_samples']):
        with torch.no_grad():
            outs = model(make_input(spec))
        errs = dense_errors(outs, samples)
        print(f'\nTinyViM-{variant} dense {spec["shape"][2:]} ({backend}): '
              'max|d|/std = ' + ', '.join(f'{e:.2e}' for e in errs))
        assert max(errs) <= tol


@pytest.mark.parametrize('variant', VARIANTS)
def test_classifier_parity(variant):
    g = golden(variant)
    weights = convert_official_classifier(weights_for(g, 'manifest'))
    x = make_input(g['cls_input_spec'])
    model = build_classifier(variant, scan_backend='reference')
    assert list(model.state_dict()) == list(weights)
    model.load_state_dict(weights, strict=True)
    model.eval()
    for backend, tol in (('reference', 1e-4), ('torch', 1e-3)):
        model.backbone.scan_backend = backend
        with torch.no_grad():
            logits = model(x, mode='tensor')
        err = rel_err(logits, g['cls_logits'])
        print(f'\nTinyViM-{variant} logits ({backend}): max|d|/std = '
              f'{err:.2e}')
        assert err <= tol


@pytest.mark.parametrize('variant', VARIANTS)
def test_param_count_matches_official(variant):
    model = build_classifier(variant)
    count = sum(p.numel() for p in model.parameters())
    expected = golden(variant)['params_M']['total_M']
    print(f'\nTinyViM-{variant}: {count / 1e6:.6f} M params '
          f'(official {expected:.6f} M)')
    assert abs(count / 1e6 - expected) < 1e-6


@pytest.mark.parametrize('arch,published_m', [('s', 5.6), ('b', 11.0),
                                              ('l', 31.7)])
def test_all_variants_match_published_size(arch, published_m):
    # the papers' counts are of the BN-fused model with a single head,
    # truncated to 0.1 M (docs/recipes.md#tinyvim-variants); L has no golden
    # file
    model = TinyViM(arch, out_indices=(3, ))
    model.switch_to_deploy()
    width = model.out_channels[-1]
    count = sum(p.numel() for p in model.parameters()) + width * 1000 + 1000
    if arch.upper() in VARIANTS:
        expected = golden(arch.upper())['params_M']['fused_single_head_M']
        assert abs(count / 1e6 - expected) < 1e-6
    assert math.floor(count / 1e5) / 10 == published_m, count


def test_official_classifier_conversion_round_trip():
    official = weights_for(golden('S'), 'manifest')
    converted = convert_official_classifier(official)
    assert 'backbone.norm6.running_var' in converted
    assert 'head.dist_head.weight' in converted
    back = to_official_classifier(converted)
    assert list(back) == list(official)
    assert all(back[k] is official[k] for k in official)
    with pytest.raises(ValueError, match='unexpected keys.*backbone.norm0'):
        convert_official_classifier({'backbone.norm0.weight': torch.ones(1)})


# ---------------------------------------------------------------- deploy --

@pytest.mark.parametrize('variant', VARIANTS)
def test_deploy_equals_eval(variant):
    model = plain_network(golden_backbone(variant))
    x = rand_image(1, 3, 128, 160)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        model.switch_to_deploy()  # idempotent
        out = model(x)
    bns = [n for n, m in model.named_modules()
           if isinstance(m, _BatchNorm) and not n.startswith('norm')]
    assert bns == [], bns
    errs = [rel_err(o, r) for o, r in zip(out, ref)]
    print(f'\nTinyViM-{variant} deploy vs eval: max|d|/std = ' +
          ', '.join(f'{e:.2e}' for e in errs))
    assert max(errs) <= 1e-4
    kept = [k for k in model.state_dict() if 'A_logs' in k or 'out_norm' in k]
    assert kept


@pytest.mark.parametrize('variant', VARIANTS)
def test_deployed_classifier_is_the_published_single_head_model(variant):
    """switch_to_deploy on the whole classifier also merges the two heads
    (their mean is one Linear): the BN-fused single-head model whose size
    the paper reports, with the official eval logits."""
    from mmtinyvim.engine import switch_to_deploy
    g = golden(variant)
    model = build_classifier(variant)
    model.load_state_dict(convert_official_classifier(
        weights_for(g, 'manifest')))
    model.eval()
    switch_to_deploy(model)
    assert not hasattr(model.head, 'dist_head')
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - g['params_M']['fused_single_head_M']) < 1e-6
    x = make_input(g['cls_input_spec'])
    with torch.no_grad():
        err = rel_err(model(x, mode='tensor'), g['cls_logits'])
    print(f'\nTinyViM-{variant} deployed classifier logits: max|d|/std = '
          f'{err:.2e}')
    assert err <= 1e-3


# ------------------------------------------------------------ input sizes --

def test_odd_input_size_is_padded_and_cropped():
    model = TinyViM('s').eval()
    x = rand_image(1, 3, 321, 479)
    with torch.no_grad():
        outs = model(x)
        padded = model(F.pad(x, (0, 480 - 479, 0, 352 - 321)))
    for out, ref, stride in zip(outs, padded, model.out_strides):
        assert out.shape[2:] == (math.ceil(321 / stride),
                                 math.ceil(479 / stride))
        torch.testing.assert_close(out, ref[..., :out.shape[2],
                                            :out.shape[3]])
    assert model.out_channels == (48, 64, 168, 224)
    assert model.out_strides == (4, 8, 16, 32)


def test_batch_equals_per_sample_in_eval():
    model = golden_backbone('S')
    x = rand_image(2, 3, 96, 160)  # H != W: catches transposed merges
    with torch.no_grad():
        batched = model(x)
        single = [model(x[i:i + 1]) for i in range(2)]
    for j, out in enumerate(batched):
        ref = torch.cat([s[j] for s in single])
        err = rel_err(out, ref)
        assert err < 1e-5, (j, err)


def test_selected_outputs_and_negative_indices():
    model = TinyViM('b', out_indices=(-1, 1)).eval()
    assert model.out_indices == (1, 3)
    assert model.out_channels == (96, 384)
    assert [k for k in model.state_dict() if k.startswith('norm')] == [
        f'norm{i}.{p}' for i in (2, 6) for p in
        ('weight', 'bias', 'running_mean', 'running_var',
         'num_batches_tracked')]
    with torch.no_grad():
        outs = model(rand_image(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 8, 8), (1, 384, 2, 2)]


# -------------------------------------------------------------- training --

def test_drop_path_training_backward():
    model = TinyViM('s', drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules()
             if type(m).__name__ == 'DropPath']
    assert len(rates) == sum(model.depths) - 1  # the first rate is 0
    assert rates == sorted(rates) and abs(rates[-1] - 0.2) < 1e-6
    model.train()
    outs = model(rand_image(2, 3, 64, 96))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_classifier_loss_is_mean_of_both_heads():
    torch.manual_seed(0)
    model = build_classifier('S', scan_backend='torch')
    model.train()
    x = rand_image(2, 3, 64, 64)
    labels = torch.tensor([3, 7])
    samples = [DataSample().set_gt_label(int(i)) for i in labels]
    feats = model.extract_feat(x)
    losses = model.head.loss(feats, samples)
    cls_logits, dist_logits = model.head.forward_heads(feats)
    expected = (F.cross_entropy(cls_logits, labels) +
                F.cross_entropy(dist_logits, labels)) / 2
    torch.testing.assert_close(losses['loss'], expected)
    losses['loss'].backward()
    assert model.head.dist_head.weight.grad is not None
    torch.testing.assert_close(model.head(feats),
                               (cls_logits + dist_logits) / 2)


def test_head_without_distillation():
    head = TinyViMClsHead(num_classes=10, in_channels=8, distillation=False)
    assert [k for k in head.state_dict()] == ['head.weight', 'head.bias']
    feat = torch.randn(3, 8)
    torch.testing.assert_close(head((feat, )), head.head(feat))
    with pytest.raises(ValueError, match=r'pooled features \(N, 8\)'):
        head((torch.randn(3, 8, 2, 2), ))


def test_frozen_stages():
    model = TinyViM('s', frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, *model.network[:3]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in [*model.network[3:], model.norm0, model.norm2]:
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())

    stem_only = TinyViM('s', frozen_stages=0).train()
    assert not any(p.requires_grad for p in stem_only.patch_embed.parameters())
    assert all(p.requires_grad for p in stem_only.network.parameters())


def test_norm_eval():
    model = TinyViM('s', norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(bn.training for bn in bns)
    assert all(p.requires_grad for p in model.parameters())
    assert model.network[0][0].mlp.act.training


# ------------------------------------------------------- pretrained load --

def test_load_official_classification_checkpoint(tmp_path):
    official = weights_for(golden('S'), 'manifest')
    model = pretrained(save_checkpoint(tmp_path, official))
    own = model.state_dict()
    for key, value in official.items():
        if not key.startswith(('norm.', 'head.', 'dist_head.')):
            assert torch.equal(own[key], value), key
    # the dense output norms keep their fresh initialisation
    assert torch.equal(model.norm6.weight, torch.ones(224))
    assert torch.equal(model.norm0.running_var, torch.ones(48))


def test_load_dense_checkpoint_everything_matches(tmp_path):
    dense = weights_for(golden('S'), 'backbone_manifest')
    model = pretrained(save_checkpoint(tmp_path, dense, wrapper='state_dict'))
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in dense.items())
    last_only = pretrained(save_checkpoint(tmp_path, dense),
                           out_indices=(3, ))
    assert torch.equal(last_only.norm6.weight, dense['norm6.weight'])

    broken = dict(dense)
    del broken['norm2.running_var']
    with pytest.raises(RuntimeError,
                       match=r'1 missing keys: norm2\.running_var'):
        pretrained(save_checkpoint(tmp_path, broken))


def test_load_mmpretrain_classifier_checkpoint_with_prefix(tmp_path):
    classifier = build_classifier('S')
    path = save_checkpoint(tmp_path, classifier.state_dict(),
                           wrapper='state_dict')
    model = pretrained(path, prefix='backbone.', out_indices=(3, ))
    assert torch.equal(model.norm6.running_var,
                       classifier.backbone.norm6.running_var)
    with pytest.raises(RuntimeError, match="No key .* prefix 'neck.'"):
        pretrained(path, prefix='neck.')


@pytest.mark.parametrize('other,form,message', [
    ('tinyvim_B', 'manifest',
     r'missing keys: network\.0\.2\.op\..*unexpected keys: '
     r'network\.0\.2\.layer_scale.*shape mismatches: network\.'),
    ('mobilemamba_T2', 'backbone_manifest',
     r'missing keys: network\.0\.0\.layer_scale.*unexpected keys: '
     r'patch_embed\.4\.'),
])
def test_checkpoint_of_other_model_is_refused(tmp_path, other, form,
                                              message):
    weights = weights_for(load_golden(other), form)
    with pytest.raises(RuntimeError, match='does not fit TinyViM'):
        pretrained(save_checkpoint(tmp_path, weights))
    with pytest.raises(RuntimeError, match=message):
        pretrained(save_checkpoint(tmp_path, weights))


def test_checkpoint_filter_fn_drops_only_classifier_and_unused_norms():
    model = TinyViM('s', out_indices=(0, 3))
    state = {'norm.weight': 1, 'head.bias': 2, 'dist_head.weight': 3,
             'norm2.weight': 4, 'norm6.weight': 5, 'network.0.x': 6,
             'normal.weight': 7}
    assert checkpoint_filter_fn(state, model) == {
        'norm6.weight': 5, 'network.0.x': 6, 'normal.weight': 7}


# ------------------------------------------------------------ bad inputs --

@pytest.mark.parametrize('kwargs,error,message', [
    (dict(arch='xl'), ValueError,
     r"Unknown TinyViM arch 'xl'; valid: s, b, l"),
    (dict(arch=dict(widths=[8, 8, 8, 8])), ValueError,
     r"missing \['depths'\]"),
    (dict(arch=dict(widths=[8] * 4, depths=[1] * 4, ratio=2)), ValueError,
     r"unknown \['ratio'\]"),
    (dict(arch=dict(widths=[8] * 3, depths=[1] * 4)), ValueError,
     r"arch\['widths'\] must be 4 positive ints"),
    (dict(out_indices=(4, )), ValueError,
     r'out_indices \[4\] out of range; valid stage indices are \[-4, 3\]'),
    (dict(out_indices=(1, -3)), ValueError, 'name a stage twice'),
    (dict(frozen_stages=5), ValueError, r'frozen_stages .* \[-1, 4\]'),
    (dict(drop_path_rate=1.0), ValueError, r'drop_path_rate must be in'),
    (dict(scan_backend='cuda'), ValueError,
     "Unknown selective-scan backend 'cuda'"),
    (dict(out_indice=(0, )), TypeError, 'out_indice'),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='x', strict=False)),
     ValueError, r"unknown keys \['strict'\]"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        TinyViM(**kwargs)


def test_scan_backend_reaches_every_mixer():
    model = TinyViM('s')
    assert model.scan_backend is None
    model.scan_backend = 'reference'
    mixers = [m for m in model.modules() if hasattr(m, 'selective_scan_2d')]
    assert len(mixers) == 5
    assert all(m.scan_backend == 'reference' for m in mixers)
    with pytest.raises(ValueError, match="valid: auto, mamba_ssm"):
        model.scan_backend = 'fast'


def test_misspelled_argument_through_registry():
    with pytest.raises(TypeError, match='drop_path'):
        MODELS.build(dict(type='TinyViM', arch='s', drop_path=0.1))


def test_custom_arch():
    model = TinyViM(dict(widths=[16, 32, 48, 64], depths=[1, 1, 3, 1]))
    assert model.arch_name == 'custom'
    assert TinyViM('B').arch_name == 'b'
    with torch.no_grad():
        outs = model.eval()(rand_image(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32, 48, 64]


@pytest.mark.parametrize('shape,message', [
    ((3, 64, 64), r'expects a 4-D image batch \(N, 3, H, W\), got a tensor '
                  r'of shape \(3, 64, 64\)'),
    ((1, 1, 64, 64), r'expects .* got a tensor of shape \(1, 1, 64, 64\)'),
    ((1, 3, 31, 64), 'needs H and W >= 32, got 31x64'),
])
def test_bad_images(shape, message):
    model = TinyViM('s').eval()
    with pytest.raises(ValueError, match='TinyViM ' + message):
        model(torch.zeros(shape))


def test_bad_head_arguments():
    with pytest.raises(ValueError, match='num_classes must be a positive'):
        TinyViMClsHead(num_classes=0, in_channels=8)
    with pytest.raises(TypeError, match='dist'):
        TinyViMClsHead(num_classes=10, in_channels=8, dist=True)


def test_default_initialisation_follows_official():
    model = TinyViM('s')
    mixer = model.network[0][2].op
    assert torch.equal(mixer.A_logs[5], torch.log(torch.arange(1., 9.)))
    assert torch.equal(mixer.Ds, torch.ones(48))
    dt = F.softplus(mixer.dt_projs_bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6
    assert torch.equal(model.network[0][0].layer_scale, torch.ones(48, 1, 1))
    conv = model.network[0][0].mlp.fc1.c.weight
    assert conv.abs().max() <= 2 and abs(conv.std().item() - 0.02) < 0.003


def test_autocast_runs_scan_in_float32():
    model = TinyViM('s', out_indices=(3, )).eval()
    x = rand_image(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[0]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)[0]
    err = rel_err(out.float(), ref)
    print(f'\nbfloat16 autocast vs float32: max|d|/std = {err:.2e}')
    assert err < 0.1
