"""metafile.yml is generated from the variants' records and the configs,
is read by mim's own metafile reader, and the configs agree with the
records."""
import re
import warnings

import pytest

from mmtinyvim.models.zoo import RECORDS, VARIANTS
from tests.modules import REPO, load_file

generate_zoo = load_file('tools/misc/generate_zoo.py')
CONFIGS = sorted((REPO / 'configs').glob('*.py'))


def test_committed_metafile_is_the_generated_one():
    generate_zoo.main(['--check'])


def test_check_fails_on_a_stale_metafile(tmp_path, monkeypatch):
    stale = tmp_path / 'metafile.yml'
    stale.write_text(generate_zoo.generate().replace('mIoU: 42.5',
                                                     'mIoU: 45.0'))
    monkeypatch.setattr(generate_zoo, 'METAFILE', stale)
    monkeypatch.setattr(generate_zoo, 'MODEL_ZOO', tmp_path / 'zoo.md')
    (tmp_path / 'zoo.md').write_text(
        (REPO / 'docs' / 'model_zoo.md').read_text())
    with pytest.raises(SystemExit, match='run python tools/misc/'):
        generate_zoo.main(['--check'])


def test_every_variant_has_a_record():
    assert set(RECORDS) == set(VARIANTS)


def test_config_outside_the_naming_scheme_is_one_clear_error():
    with pytest.raises(ValueError, match='naming scheme'):
        generate_zoo.parse_config_name('faster_rcnn_r50_coco')
    with pytest.raises(ValueError, match='Unknown variant'):
        generate_zoo.parse_config_name('maskrcnn_tinyvim_xl_coco')


def test_metafile_entries_mark_results_published_and_name_weights(tmp_path):
    import yaml
    models = yaml.safe_load((REPO / 'metafile.yml').read_text())['Models']
    assert [m['Name'] for m in models] == [p.stem for p in CONFIGS]
    with_weights = 0
    for model in models:
        variant, kind, _ = generate_zoo.parse_config_name(model['Name'])
        record, meta = RECORDS[variant], model['Metadata']
        if kind in record.results:
            assert meta['Result Source'].startswith('published: ')
            assert model['Results'][0]['Metrics'] == {
                k: v for k, v in record.results[kind].metrics.items()
                if k in model['Results'][0]['Metrics']}
        else:
            assert model['Results'] == 'not published'
            assert meta['Recipe'] == 'adapted'
        if 'Weights Source' in meta:
            with_weights += 1
            assert any(w.url == meta['Weights Source']
                       for w in record.weights)
    assert with_weights == sum(len(r.weights) for r in RECORDS.values())


def test_mim_reads_the_metafile():
    """mim search's own reader (modelindex + its table) takes every
    entry."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from mim.commands.search import convert2df
        from modelindex.load_model_index import load
    index = load(str(REPO / 'metafile.yml'))
    table = convert2df(index)
    assert len(table) == len(CONFIGS)
    row = table.loc['mobilemamba_b1_in1k']
    assert 'https://drive.google.com/' in row['weight']


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_config_backbone_weights_are_its_records(config):
    """A config that names its backbone's checkpoint names the file of its
    variant's record (ImageNet configs start from scratch)."""
    variant, kind, dataset = generate_zoo.parse_config_name(config.stem)
    found = re.findall(r"checkpoint='checkpoints/([^']+)'",
                       config.read_text())
    if dataset == 'ImageNet-1k':
        assert not found
    else:
        assert set(found) <= {RECORDS[variant].backbone_weights}


def _stamps():
    """(size, mtime) of the repository's generated files."""
    return {name: ((REPO / name).stat().st_size,
                   (REPO / name).stat().st_mtime_ns)
            for name in ('metafile.yml', 'model-index-mmpretrain.yml',
                         'docs/model_zoo.md', 'README.md')}


def test_check_fails_on_a_stale_model_zoo_table(tmp_path, monkeypatch):
    before = _stamps()
    doc = tmp_path / 'model_zoo.md'
    doc.write_text((REPO / 'docs' / 'model_zoo.md').read_text().replace(
        '| released | 79.9 |', '| released | 80.9 |'))
    monkeypatch.setattr(generate_zoo, 'MODEL_ZOO', doc)
    monkeypatch.setattr(generate_zoo, 'METAFILE', tmp_path / 'metafile.yml')
    # the run below rewrites all three outputs: each one a copy in tmp_path
    readme = tmp_path / 'README.md'
    readme.write_text((REPO / 'README.md').read_text())
    monkeypatch.setattr(generate_zoo, 'README', readme)
    monkeypatch.setattr(generate_zoo, 'MMPRETRAIN_INDEX',
                        tmp_path / 'model-index-mmpretrain.yml')
    (tmp_path / 'metafile.yml').write_text(generate_zoo.generate())
    with pytest.raises(SystemExit, match='model_zoo.md not what'):
        generate_zoo.main(['--check'])
    generate_zoo.main([])  # rewrites the table in tmp_path
    assert doc.read_text() == (REPO / 'docs' / 'model_zoo.md').read_text()
    assert readme.read_text() == (REPO / 'README.md').read_text()
    assert _stamps() == before  # nothing of the repository written


def test_check_fails_on_a_stale_readme_zoo_table(tmp_path, monkeypatch):
    readme = tmp_path / 'README.md'
    readme.write_text((REPO / 'README.md').read_text().replace(
        '| MobileMamba-B4 | 512 |', '| MobileMamba-B4 | 384 |'))
    monkeypatch.setattr(generate_zoo, 'README', readme)
    with pytest.raises(SystemExit, match='README.md not what'):
        generate_zoo.main(['--check'])
    assert '| MobileMamba-B4 | 512 |' in generate_zoo.render_readme(
        readme.read_text())


@pytest.mark.parametrize(
    'config', [p for p in CONFIGS if p.stem.endswith('_in1k')],
    ids=lambda p: p.stem)
def test_imagenet_config_resolution_and_drop_path_are_the_variants(config):
    """The ImageNet configs train at the variant's resolution and with the
    drop path its arch_zoo entry gives (where it gives one): derived from
    the one home of each fact, not a list of numbers in the test."""
    from mmengine.config import Config

    from mmtinyvim.models.zoo import FAMILIES, paper_resolution
    variant, _, _ = generate_zoo.parse_config_name(config.stem)
    family, arch = variant.split('-')
    cfg = Config.fromfile(str(config), import_custom_modules=False)
    crops = [t['crop_size'] for t in cfg.test_dataloader.dataset.pipeline
             if t['type'] == 'CenterCrop']
    assert crops == [paper_resolution(variant)], crops
    zoo_rate = FAMILIES[family].backbone.arch_zoo[arch].get('drop_path_rate')
    rate = cfg.model.backbone.get('drop_path_rate')
    if zoo_rate is not None and rate is not None:
        assert rate == pytest.approx(zoo_rate), (rate, zoo_rate)
