"""``import mmtinyvim`` with torch alone, per-toolbox registration, and
:func:`mmtinyvim.create_model`: features, ``pretrained_cfg``, local weights.

The subprocesses hide installed packages with a ``sys.meta_path`` finder
that refuses them, as a machine without them would."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mmtinyvim
from mmtinyvim.models import zoo
from mmtinyvim.models.backbones import mobilemamba, tinyvim
from mmtinyvim.models.classifier import Classifier
from mmtinyvim.models.pretrained import MissingPretrainedError

REPO = Path(__file__).resolve().parents[1]
MM = ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')
SMALL = {'tinyvim_s': tinyvim, 'mobilemamba_t2': mobilemamba}

BLOCKER = textwrap.dedent('''
    import json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {name!r}',
                                          name=name)
            return None

    sys.meta_path.insert(0, Refuse())
''')


def run_without(blocked, body, tmp_path):
    """Run ``body`` in a fresh interpreter where ``blocked`` cannot be
    imported; its last stdout line, parsed as JSON."""
    script = BLOCKER + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if p]))
    result = subprocess.run(
        [sys.executable, '-c', script, json.dumps(list(blocked))],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_torch_alone(tmp_path):
    out = run_without(MM + ('timm', ), '''
        import torch
        import mmtinyvim
        from mmtinyvim.models import compat
        x = torch.randn(1, 3, 64, 64)
        result = dict(
            loaded=sorted({m.split('.')[0] for m in sys.modules} & BLOCKED),
            names=mmtinyvim.list_models('mobilemamba_*'),
            drop_path=compat.DropPath.__name__,
            base=compat.BaseModule.__name__)
        model = mmtinyvim.create_model('tinyvim_s').eval()
        with torch.no_grad():
            result['logits'] = list(model(x).shape)
        features = mmtinyvim.create_model(
            'mobilemamba_t2', features_only=True, out_indices=(1, 3)).eval()
        with torch.no_grad():
            result['maps'] = [list(f.shape) for f in features(x)]
        result['channels'] = features.feature_info.channels()
        result['reduction'] = features.feature_info.reduction()
        # training runs the local DropPath
        model = mmtinyvim.create_model('mobilemamba_b1', num_classes=3)
        model.train()(torch.randn(2, 3, 64, 64)).sum().backward()
        errors = {}
        def error(key, fn):
            try:
                fn()
            except ImportError as err:
                errors[key] = str(err)
        from mmtinyvim.registry import MODELS
        error('build', lambda: MODELS.build(dict(type='TinyViM')))
        error('engine', lambda: __import__('mmtinyvim.engine'))
        from mmtinyvim.models import heads
        error('head', lambda: heads.TinyViMClsHead)
        result['errors'] = errors
        print(json.dumps(result))
    ''', tmp_path)
    assert out['loaded'] == []
    assert out['names'] == [n for n in mmtinyvim.list_models()
                            if n.startswith('mobilemamba')]
    assert out['drop_path'] == 'LocalDropPath'
    assert out['base'] == 'TorchBaseModule'
    assert out['logits'] == [1, 1000]
    assert out['channels'] == [144, 368] and out['reduction'] == [16, 64]
    assert out['maps'] == [[1, 144, 4, 4], [1, 368, 1, 1]]
    errors = out['errors']
    assert set(errors) == {'build', 'engine', 'head'}
    assert errors['build'].startswith(
        'Building from the MODELS registry needs an OpenMMLab stack, but '
        'mmengine, mmcv cannot be imported')
    assert "pip install 'mmtinyvim[openmmlab]'" in errors['build']
    assert errors['engine'].startswith('mmtinyvim.engine (the runner hooks) '
                                       'needs an OpenMMLab stack')
    assert 'mmpretrain' in errors['head']


@pytest.mark.parametrize('toolbox, config, others', [
    ('mmseg', 'fpn_tinyvim_s_ade20k.py', ('mmdet', 'mmpretrain')),
    ('mmdet', 'retinanet_mobilemamba_t2_coco.py', ('mmseg', 'mmpretrain')),
])
def test_one_toolbox_installed(toolbox, config, others, tmp_path):
    """With one toolbox, the package imports, registers what that toolbox
    can build (backbones, neck, its head) and the config's backbone
    builds from it."""
    out = run_without(others, f'''
        import torch
        from mmengine.config import Config
        import mmtinyvim
        from {toolbox}.registry import MODELS
        from {toolbox}.utils import register_all_modules
        register_all_modules()
        cfg = Config.fromfile({str(REPO / 'configs' / config)!r})
        cfg.model.backbone.init_cfg = None
        backbone = MODELS.build(cfg.model.backbone).eval()
        with torch.no_grad():
            maps = backbone(torch.randn(1, 3, 64, 64))
        print(json.dumps(dict(
            loaded=sorted({{m.split('.')[0] for m in sys.modules}} & BLOCKED),
            type=type(backbone).__name__, maps=len(maps),
            registered={{name: MODELS.get(name) is not None for name in (
                'EfficientViTFPN', 'SSDLiteHead', 'TinyViMClsHead')}})))
    ''', tmp_path)
    assert out['loaded'] == []
    assert out['type'] == ('TinyViM' if 'tinyvim' in config else
                           'MobileMamba')
    assert out['maps'] >= 3
    assert out['registered'] == {'EfficientViTFPN': True,
                                 'SSDLiteHead': toolbox == 'mmdet',
                                 'TinyViMClsHead': False}


@pytest.mark.parametrize('name', SMALL)
def test_features_only(name):
    module = SMALL[name]
    x = torch.randn(2, 3, 64, 96)
    model = mmtinyvim.create_model(name, features_only=True).eval()
    backbone = zoo.FAMILIES[name.partition('_')[0]].backbone
    assert type(model) is backbone
    assert model.out_indices == backbone().out_indices  # its own default
    for out_indices in [model.out_indices, (0, -1), (2, )]:
        model = mmtinyvim.create_model(name, features_only=True,
                                       out_indices=out_indices).eval()
        info = model.feature_info
        with torch.no_grad():
            maps = model(x)
        assert len(info) == len(maps) == len(out_indices)
        modules = dict(model.named_modules())
        for fmap, channels, reduction, entry in zip(
                maps, info.channels(), info.reduction(), info):
            assert fmap.shape == (2, channels, -(-64 // reduction),
                                  -(-96 // reduction))
            assert entry['module'] in modules
        assert info.reduction() == [module.STAGE_STRIDES[i]
                                    for i in model.out_indices]
    assert 'num_classes' not in model.pretrained_cfg
    assert model.default_cfg is model.pretrained_cfg


def test_pretrained_cfg_comes_from_the_records():
    factory = mmtinyvim.models.factory
    assert mmtinyvim.create_model('tinyvim_s').pretrained_cfg == \
        factory.pretrained_cfg('tinyvim_s')
    for name, variant in factory.MODEL_NAMES.items():
        record = zoo.RECORDS[variant]
        cfg = factory.pretrained_cfg(name)
        assert cfg['official_file'] == record.backbone_weights
        weights = {w.file: w for w in record.weights}[cfg['official_file']]
        assert cfg['origin_url'] == weights.url
        side = zoo.paper_resolution(variant)
        assert cfg['input_size'] == (3, side, side)
        assert cfg['license'] in ('mit', 'unknown')
    cfg = factory.pretrained_cfg('tinyvim_b.1000e_in1k')
    assert cfg['official_file'] == 'tinyvim_b_1000e.pth'


@pytest.mark.parametrize('name', SMALL)
def test_state_dict_is_that_of_the_mmpretrain_classifier(name):
    """Same keys and shapes as the configs' ImageClassifier, and the same
    logits with its weights."""
    variant = mmtinyvim.models.factory.MODEL_NAMES[name]
    mm_model, _ = zoo.build_classifier(variant)
    mm_model.eval()
    model = mmtinyvim.create_model(name).eval()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in mm_model.state_dict().items()}
    assert ours == theirs
    model.load_state_dict(mm_model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), mm_model(x, mode='tensor'))


def _official_file(name, path, num_classes=1000):
    """A checkpoint in the official layout and wrapper, of a fresh
    (randomly initialised) classifier; returns that classifier."""
    model = mmtinyvim.create_model(name, num_classes=num_classes).eval()
    module = SMALL[name]
    official = module.to_official_classifier(model.state_dict())
    torch.save({'model': official, 'epoch': 3}, path)
    return model


@pytest.mark.parametrize('name', SMALL)
def test_pretrained_from_a_local_official_file(name, tmp_path, monkeypatch):
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / 'weights.pth'
    source = _official_file(name, path)
    with torch.no_grad():
        expected = source(x)
        for model in [
                mmtinyvim.create_model(name, pretrained=str(path)),
                mmtinyvim.create_model(name, pretrained=True,
                                       pretrained_file=str(path))]:
            torch.testing.assert_close(model.eval()(x), expected)
        # the cache folder, under the official name
        monkeypatch.setenv('MMTINYVIM_HOME', str(tmp_path))
        official = mmtinyvim.create_model(name).pretrained_cfg[
            'official_file']
        path.rename(tmp_path / official)
        model = mmtinyvim.create_model(name, pretrained=True).eval()
        torch.testing.assert_close(model(x), expected)
        # features: the backbone's weights
        features = mmtinyvim.create_model(name, pretrained=True,
                                          features_only=True,
                                          out_indices=-1).eval()
        for key, value in features.state_dict().items():
            if f'backbone.{key}' in source.state_dict():
                torch.testing.assert_close(
                    value, source.state_dict()[f'backbone.{key}'])
        # another number of classes: the backbone loads, the head is new
        model = mmtinyvim.create_model(name, pretrained=True, num_classes=7)
        torch.testing.assert_close(
            model.eval().forward_features(x), source.forward_features(x))
        assert model(x).shape == (1, 7)


def test_a_checkpoint_of_another_variant_is_refused(tmp_path):
    path = tmp_path / 'mm.pth'
    _official_file('mobilemamba_t2', path)
    with pytest.raises(RuntimeError, match=r'does not fit Classifier \(mobilemamba_t4\)'):
        mmtinyvim.create_model('mobilemamba_t4', pretrained=str(path))


def test_missing_weights_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv('MMTINYVIM_HOME', str(tmp_path / 'cache'))
    with pytest.raises(MissingPretrainedError) as err:
        mmtinyvim.create_model('tinyvim_b', pretrained=True)
    message = str(err.value)
    weights = {w.file: w for w in zoo.RECORDS['tinyvim-b'].weights}
    assert isinstance(err.value, FileNotFoundError)
    assert message.startswith(
        'Pretrained weights for tinyvim_b not found: '
        f'{tmp_path}/cache/tinyvim_b_300e.pth ($MMTINYVIM_HOME')
    assert weights['tinyvim_b_300e.pth'].url in message
    assert f'save it as {tmp_path}/cache/tinyvim_b_300e.pth' in message
    with pytest.raises(MissingPretrainedError, match='tinyvim_b_1000e.pth'):
        mmtinyvim.create_model('tinyvim_b.1000e_in1k', pretrained=True)
    with pytest.raises(MissingPretrainedError, match=str(tmp_path / 'x')):
        mmtinyvim.create_model('tinyvim_s', pretrained=str(tmp_path / 'x'))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(name='tinyvim_m'), ValueError,
     r"Unknown model 'tinyvim_m' \(did you mean tinyvim_s"),
    (dict(name='tinyvim_b.300e'), ValueError, "Unknown weights tag '300e'"),
    (dict(name='tinyvim_s', out_indices=(1, )), ValueError,
     'pass features_only=True'),
    (dict(name='tinyvim_s', pretrained_file='x.pth'), ValueError,
     'only with pretrained=True'),
    (dict(name='tinyvim_s', features_only=True, num_classes=3), ValueError,
     'features_only=True gives the backbone'),
    (dict(name='tinyvim_s', in_chans=1), ValueError, 'in_chans must be 3'),
    (dict(name='tinyvim_s', num_classes=3, global_pool=''), ValueError,
     "global_pool='' .* needs num_classes=0"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mmtinyvim.create_model(**kwargs)


def test_classifier_uses_the_last_stage():
    model = Classifier('tinyvim-s')
    assert model.backbone.out_indices == (3, )
    assert model.num_features == model.backbone.out_channels[-1]
