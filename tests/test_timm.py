"""The variants as timm models pass timm's generic model checks (those of
timm's tests/test_models.py: forward, backward, default cfg, features,
forward_intermediates, compile), on small images."""
import math

import pytest
import torch

timm = pytest.importorskip('timm')

import mmtinyvim  # noqa: E402  (registers the variants)
from mmtinyvim.models.pretrained import MissingPretrainedError  # noqa: E402

NAMES = ['tinyvim_s', 'mobilemamba_t2']
SIZE = (3, 64, 64)


def test_every_variant_is_a_timm_model():
    assert timm.list_models(module='timm_models') == sorted(
        mmtinyvim.list_models())
    cfg = timm.models.get_pretrained_cfg('tinyvim_b.1000e_in1k')
    assert cfg.origin_url == mmtinyvim.models.factory.pretrained_cfg(
        'tinyvim_b.1000e_in1k')['origin_url']


@pytest.mark.parametrize('name', NAMES)
def test_forward_and_backward(name):
    model = timm.create_model(name).eval()
    out = model(torch.randn(1, *SIZE))
    assert out.shape == (1, model.num_classes) and not out.isnan().any()
    model = timm.create_model(name, num_classes=42).train()
    out = model(torch.randn(2, *SIZE))
    out.mean().backward()
    assert out.shape == (2, 42)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize('name', NAMES)
def test_default_cfg_and_head(name):
    model = timm.create_model(name).eval()
    cfg = model.default_cfg
    assert model.num_classes == cfg['num_classes'] > 0
    assert model.num_features > 0 and model.head_hidden_size > 0
    state = model.state_dict()
    for key in (*cfg['classifier'], cfg['first_conv']):
        assert key + '.weight' in state
    with torch.no_grad():
        # pool_size is the last map's size at the config's input size
        feats = model.forward_features(torch.randn(1, *cfg['input_size']))
        assert feats.shape[1:] == (model.num_features, *cfg['pool_size'])
        x = torch.randn(1, *SIZE)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0
        torch.testing.assert_close(model(x), pre)
        model.reset_classifier(0, '')
        assert model(x).shape == feats.shape
        model = timm.create_model(name, num_classes=0, global_pool='')
        assert model.eval()(x).dim() == 4


@pytest.mark.parametrize('name', NAMES)
def test_features_only(name):
    for kwargs in [{}, dict(out_indices=(1, 2)), dict(feature_cls='getter')]:
        model = timm.create_model(name, features_only=True, **kwargs).eval()
        channels = model.feature_info.channels()
        reductions = model.feature_info.reduction()
        assert len(channels) >= (2 if kwargs.get('out_indices') else 3)
        with torch.no_grad():
            outs = model(torch.randn(1, *SIZE))
        assert len(outs) == len(channels)
        for out, c, r in zip(outs, channels, reductions):
            assert out.shape[1] == c
            assert out.shape[2] <= math.ceil(SIZE[1] / r) + 1
            assert out.shape[3] <= math.ceil(SIZE[2] / r) + 1
            assert not out.isnan().any()


@pytest.mark.parametrize('name', NAMES)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    info = timm.models.FeatureInfo(model.feature_info,
                                   len(model.feature_info))
    for size in [SIZE, (3, 72, 100)]:  # TinyViM pads the second to 32s
        x = torch.randn(1, *size)
        with torch.no_grad():
            final, maps = model.forward_intermediates(x)
            assert len(maps) == len(info.channels()) >= 3
            for fmap, c, r in zip(maps, info.channels(), info.reduction()):
                assert fmap.shape == (1, c, math.ceil(size[1] / r),
                                      math.ceil(size[2] / r))
            torch.testing.assert_close(final, model.forward_features(x))
            last = model.forward_intermediates(
                x, indices=1, norm=True, intermediates_only=True)
            torch.testing.assert_close(last[0], final)


def test_intermediates_are_the_backbones_maps():
    """forward_intermediates gives what the dense backbone outputs before
    its output norms."""
    model = timm.create_model('tinyvim_s').eval()
    dense = mmtinyvim.create_model('tinyvim_s', features_only=True,
                                   out_indices=(0, 1, 2, 3)).eval()
    dense.load_state_dict({k[len('backbone.'):]: v
                           for k, v in model.state_dict().items()
                           if k.startswith('backbone.')}, strict=False)
    for i in range(4):
        setattr(dense, f'norm{2 * i}', torch.nn.Identity())
    x = torch.randn(1, 3, 72, 100)
    with torch.no_grad():
        for ours, theirs in zip(
                model.forward_intermediates(x, intermediates_only=True),
                dense(x)):
            torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize('name', NAMES)
def test_compiles_without_graph_breaks(name):
    # timm's tests script models; torch.compile is the current equivalent
    # (and what these models' fast paths use)
    model = timm.create_model(name).eval()
    x = torch.randn(1, *SIZE)
    compiled = torch.compile(model, backend='eager', fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_pretrained_from_a_local_file(tmp_path, monkeypatch):
    from mmtinyvim.models.backbones import tinyvim
    source = timm.create_model('tinyvim_s').eval()
    path = tmp_path / 'tinyvim_s_1000e.pth'
    torch.save({'model': tinyvim.to_official_classifier(source.state_dict())},
               path)
    x = torch.randn(1, *SIZE)
    with torch.no_grad():
        model = timm.create_model('tinyvim_s', pretrained=True,
                                  pretrained_cfg_overlay=dict(file=str(path)))
        torch.testing.assert_close(model.eval()(x), source(x))
        monkeypatch.setenv('MMTINYVIM_HOME', str(tmp_path))
        model = timm.create_model('tinyvim_s', pretrained=True,
                                  features_only=True)
        assert len(model.eval()(x)) == 4
    monkeypatch.setenv('MMTINYVIM_HOME', str(tmp_path / 'empty'))
    with pytest.raises(MissingPretrainedError, match='tinyvim_s_1000e.pth'):
        timm.create_model('tinyvim_s', pretrained=True)
