"""The ImageNet configs are mmpretrain model names (ModelHub: list_models,
get_model, inference_model, ImageClassificationInferencer) resolved to this
package's configs, and mim's own download code, given metafile.yml, says in
one line where each official file is and what to run on it (or finds the
file once it is in --dest)."""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
import yaml

from mmtinyvim.config_path import configs_dir
from mmtinyvim.integrations.mmpretrain_hub import register_mmpretrain_models
from tests.modules import REPO

mmpretrain = pytest.importorskip('mmpretrain')

MODELS = yaml.safe_load((REPO / 'metafile.yml').read_text())['Models']
CLASSIFIERS = [m['Name'] for m in MODELS
               if m['Metadata']['Training Data'] == 'ImageNet-1k']
OTHERS = [m['Name'] for m in MODELS if m['Name'] not in CLASSIFIERS]
WEIGHTS = {m['Name']: m['Weights'] for m in MODELS}
NAME = 'tinyvim_s_in1k'
CONVERTER = 'tools/model_converters/official_to_mmtinyvim.py'


def _image(side=64):
    return (np.random.RandomState(0).rand(side, side, 3) * 255).astype(
        np.uint8)


def test_list_models_has_every_classifier_and_no_det_seg_config():
    found = mmpretrain.list_models('*tinyvim*') + mmpretrain.list_models(
        '*mobilemamba*')
    assert sorted(found) == sorted(CLASSIFIERS)
    assert mmpretrain.list_models(
        'tinyvim*', task='Image Classification') == sorted(
            n for n in CLASSIFIERS if n.startswith('tinyvim'))
    assert not set(found) & set(OTHERS)


def test_registering_again_changes_nothing():
    before = mmpretrain.list_models()
    assert register_mmpretrain_models() is False  # import did it
    assert mmpretrain.list_models() == before


@pytest.mark.parametrize('name', CLASSIFIERS)
def test_get_model_by_name_builds_our_config(name):
    from mmpretrain.apis import ModelHub
    assert ModelHub.get(name).config.filename == osp.join(
        configs_dir(), f'{name}.py')
    model = mmpretrain.get_model(name, pretrained=False)
    assert model._config.filename == osp.join(configs_dir(), f'{name}.py')
    backbone = model._config.model.backbone
    assert type(model.backbone).__name__ == backbone.type
    assert model._dataset_meta['classes'][0] == 'tench, Tinca tinca'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A small generated checkpoint of the tinyvim_s_in1k classifier:
    random weights, its own class names."""
    torch.manual_seed(0)
    model = mmpretrain.get_model(NAME)
    for p in model.parameters():
        p.data.normal_(0, 0.02)
    classes = [f'class {i}' for i in range(1000)]
    path = tmp_path_factory.mktemp('ckpt') / 'tinyvim_s_in1k.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=classes))), path)
    return path, model.state_dict(), classes


def test_get_model_with_a_local_checkpoint_loads_it(checkpoint):
    path, state_dict, classes = checkpoint
    model = mmpretrain.get_model(NAME, pretrained=str(path))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state_dict.items())
    assert model._dataset_meta['classes'] == classes
    fresh = mmpretrain.get_model(NAME, pretrained=False)
    key = next(k for k in state_dict if k.startswith('head.'))
    assert not torch.equal(fresh.state_dict()[key], state_dict[key])


def test_get_model_pretrained_true_warns_no_checkpoint_is_defined():
    """No checkpoint of this package's format is published: mmpretrain
    builds the classifier and says so."""
    with pytest.warns(UserWarning, match='Unable to find pre-defined'):
        mmpretrain.get_model(NAME, pretrained=True)


def test_inference_model_by_name_gives_a_top1():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = mmpretrain.inference_model(NAME, _image())
    assert result['pred_scores'].shape == (1000, )
    assert 0 <= result['pred_label'] < 1000
    assert result['pred_class'] == mmpretrain.get_model(
        NAME)._dataset_meta['classes'][result['pred_label']]


def test_inferencer_by_name_on_an_image_file(checkpoint, tmp_path):
    from mmcv import imwrite
    from mmpretrain import ImageClassificationInferencer
    path, _, classes = checkpoint
    image = str(tmp_path / 'demo.jpg')
    imwrite(_image(), image)
    inferencer = ImageClassificationInferencer(NAME, pretrained=str(path))
    assert inferencer.config.filename == osp.join(configs_dir(),
                                                  f'{NAME}.py')
    result, = inferencer(image)
    assert result['pred_class'] == classes[result['pred_label']]


# mim: its download command, with mmtinyvim "installed" as a wheel is (the
# metafile and the configs in <site>/mmtinyvim/.mim)

@pytest.fixture
def mim_download(tmp_path, monkeypatch):
    search = pytest.importorskip('mim.commands.search')
    download = pytest.importorskip('mim.commands.download')
    site = tmp_path / 'site' / 'mmtinyvim' / '.mim'
    site.mkdir(parents=True)
    (site / 'metafile.yml').symlink_to(REPO / 'metafile.yml')
    (site / 'configs').symlink_to(REPO / 'configs')
    (site / 'model-index.yml').write_text('Import:\n  - metafile.yml\n')
    for module in (search, download):
        monkeypatch.setattr(module, 'is_installed', lambda pkg: True)
        monkeypatch.setattr(module, 'get_installed_path',
                            lambda pkg: str(site.parent))
    monkeypatch.setattr(download, 'module_full_name', lambda pkg: pkg)
    dest = tmp_path / 'dest'

    def run(config):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return download.download('mmtinyvim', [config], str(dest))
    return run, dest


def _why(err):
    """mim raises a plain string from its download (a TypeError); the line
    it stops with is the exception that string came from."""
    while isinstance(err, TypeError) and err.__context__ is not None:
        err = err.__context__
    return str(err)


def test_every_metafile_entry_has_one_weights_line():
    for name, line in WEIGHTS.items():
        assert ',' not in line, name  # mim splits on commas
        assert '\n' not in line, name


@pytest.mark.parametrize('config', [
    'tinyvim_s_1000e_in1k', 'mobilemamba_b1_in1k', 'maskrcnn_tinyvim_s_coco',
    'fpn_mobilemamba_b4_ade20k', 'tinyvim_s_in1k'])
def test_mim_download_says_where_the_file_is(mim_download, config):
    run, dest = mim_download
    with pytest.raises(Exception) as err:
        run(config)
    assert not isinstance(err.value, (KeyError, AttributeError))
    why = _why(err.value)
    assert WEIGHTS[config] in why
    model = next(m for m in MODELS if m['Name'] == config)
    meta = model['Metadata']
    if 'Weights Source' in meta:  # a classifier with an official file
        assert meta['Weights Source'] in why and CONVERTER in why
        assert why.rstrip("'").endswith(f'checkpoints/{config}.pth')
    elif 'Backbone Weights' in meta:  # det/seg: the backbone's file
        assert meta['Backbone Weights Source'] in why
        assert why.rstrip("'").endswith(meta['Backbone Weights'])
    else:  # no official file for this config: which configs have one
        assert 'tinyvim_s_1000e_in1k' in why
    assert not dest.exists() or not any(
        p.suffix == '.py' for p in dest.iterdir())


def test_mim_download_finds_the_converted_file_in_dest(mim_download):
    run, dest = mim_download
    dest.mkdir()
    (dest / 'tinyvim_s_1000e_in1k.pth').write_bytes(b'converted')
    (dest / 'tinyvim_s_1000e.pth').write_bytes(b'official')
    run('tinyvim_s_1000e_in1k')
    run('maskrcnn_tinyvim_s_coco')
    for config in ('tinyvim_s_1000e_in1k', 'maskrcnn_tinyvim_s_coco'):
        assert (dest / f'{config}.py').is_file()
    assert (dest / 'tinyvim_s_1000e_in1k.pth').read_bytes() == b'converted'


def test_mim_has_no_quiet_stop_for_a_file_it_cannot_fetch(mim_download):
    """Why the line comes with a traceback (README, docs/bad_inputs.md):
    openmim 0.3.9 tries every Weights entry whose file is not in --dest as a
    URL, and its get_content_from_url raises the request's error message as
    a str for any failure, which Python turns into a TypeError; its own
    errors (an unknown config) are uncaught exceptions too, so no Weights
    value ends a download quietly except a file already in --dest. When a
    mim release changes this, this test fails: revisit the docs then."""
    requests = pytest.importorskip('requests')
    run, dest = mim_download
    with pytest.raises(TypeError, match='must derive from BaseException') \
            as err:
        run(NAME)
    cause = err.value.__context__
    assert isinstance(cause, requests.exceptions.InvalidSchema)
    # the metafile's line, whole, is the last line of that message
    assert str(cause) == f'No connection adapters were found for ' \
        f'{WEIGHTS[NAME]!r}'
    with pytest.raises(ValueError, match='Expected configs'):
        run('no_such_config')



def test_the_converted_official_file_by_name_is_the_official_network(
        tmp_path):
    """The route the Weights line gives: an official-format TinyViM-S file
    (generated from the golden manifest), the converter, then
    get_model(name, pretrained=<converted>): the official logits."""
    from tests.golden import load_golden, make_input, rel_err, weights_for
    from tests.modules import load_file
    golden = load_golden('tinyvim_S')
    official = tmp_path / 'tinyvim_s_1000e.pth'
    torch.save(dict(model=weights_for(golden)), official)
    converted = tmp_path / 'tinyvim_s_1000e_in1k.pth'
    load_file(CONVERTER).main(['--family', 'tinyvim', '--arch', 's',
                               str(official), str(converted)])
    model = mmpretrain.get_model('tinyvim_s_1000e_in1k',
                                 pretrained=str(converted))
    x = make_input(golden['cls_input_spec'])
    with torch.no_grad():
        err = rel_err(model(x, mode='tensor'), golden['cls_logits'])
    assert err <= 1e-3, err
    assert model._dataset_meta['classes'][0] == 'tench, Tinca tinca'


def test_readme_speed_column_is_the_benchmark_json(tmp_path):
    """The README's zoo table shows the benchmark's measured numbers, and
    its stale mark where the JSON says they predate the current code."""
    import json
    from tests.modules import load_file
    generate_zoo = load_file('tools/misc/generate_zoo.py')
    data = json.loads((REPO / 'docs' / 'benchmark_h200.json').read_text())
    row = data['inference']['rows'][0]
    row['amp']['mmtinyvim_api'] = 12345
    data['stale'] = {'columns': [], 'reason': 'none'}
    changed = tmp_path / 'bench.json'
    changed.write_text(json.dumps(data))
    table = generate_zoo.variants_table(changed)
    line = next(li for li in table.splitlines()
                if li.startswith(f'| {row["variant"]} |'))
    assert f'| {row["amp"]["official"]} / 12345 |' in line
    assert f'| {row["amp"]["official"]} / 12345‡ |' not in line
