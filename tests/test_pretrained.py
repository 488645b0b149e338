"""A missing backbone checkpoint is one message before any dataset is built,
naming where the official weights are published."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.nn as nn
from mmengine.model import BaseModule

from mmtinyvim.models.pretrained import (OFFICIAL_WEIGHTS,
                                         MissingPretrainedError,
                                         check_pretrained_files)

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = str(REPO / 'configs' / 'maskrcnn_tinyvim_s_coco.py')


def _train_main():
    sys.path.insert(0, str(REPO / 'tools'))
    import train
    return train.main


def test_train_tool_missing_backbone_weights_is_one_message_before_data(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints/tinyvim_s_1000e.pth: absent
    data_root = tmp_path / 'never_written'
    with pytest.raises(MissingPretrainedError) as err:
        _train_main()([DET_CONFIG, '--work-dir', str(tmp_path / 'wd'),
                       '--cfg-options',
                       f'train_dataloader.dataset.data_root={data_root}/',
                       f'val_dataloader.dataset.data_root={data_root}/'])
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    # the data root does not exist: a dataset built first would have
    # raised its own "annotation file not found" instead
    assert not data_root.exists()
    assert message.startswith('Pretrained checkpoint not found: '
                              'checkpoints/tinyvim_s_1000e.pth')
    link = OFFICIAL_WEIGHTS['tinyvim_s_1000e.pth'][1]
    assert link in message and 'github.com/xwmaxwma/TinyViM' in message
    assert 'No conversion is needed' in message
    assert '--cfg-options model.backbone.init_cfg=None' in message


def test_train_command_prints_missing_weights_without_traceback(tmp_path):
    # checkpoints/tinyvim_s_1000e.pth is absent from tmp_path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if p]))
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), DET_CONFIG,
         '--work-dir', str(tmp_path / 'wd')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert ('Error: Pretrained checkpoint not found: '
            'checkpoints/tinyvim_s_1000e.pth') in result.stderr
    assert '--cfg-options model.backbone.init_cfg=None' in result.stderr


def test_train_command_keeps_the_traceback_of_other_errors(monkeypatch):
    _train_main()
    import train

    def fail(argv=None):
        raise ValueError('a bug')

    monkeypatch.setattr(train, 'main', fail)
    with pytest.raises(ValueError, match='a bug'):  # not turned into exit 1
        train.run([])

    def missing(argv=None):
        raise MissingPretrainedError('Pretrained checkpoint not found: x')

    monkeypatch.setattr(train, 'main', missing)
    with pytest.raises(SystemExit) as exit_info:
        train.run([])
    assert exit_info.value.code == 1


class _Backbone(BaseModule):
    def __init__(self, checkpoint):
        super().__init__(init_cfg=dict(type='Pretrained',
                                       checkpoint=checkpoint))
        self.conv = nn.Conv2d(1, 1, 1)


def test_check_names_unknown_files_and_skips_urls_and_existing(tmp_path):
    model = nn.Module()
    model.backbone = _Backbone('https://example.com/weights.pth')
    check_pretrained_files(model)  # remote: mmengine fetches it
    present = tmp_path / 'mine.pth'
    present.write_bytes(b'')
    model.backbone = _Backbone(str(present))
    check_pretrained_files(model)
    model.backbone = _Backbone(str(tmp_path / 'other.pth'))
    with pytest.raises(MissingPretrainedError,
                       match='not one of the official files'):
        check_pretrained_files(model)


def test_building_the_model_without_the_file_still_works(tmp_path,
                                                         monkeypatch):
    # tools/test.py, get_flops and the image demo build the config's model
    # and take their weights from elsewhere
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(DET_CONFIG)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    with pytest.raises(MissingPretrainedError, match='model.backbone'):
        check_pretrained_files(model)


def test_every_config_checkpoint_has_a_published_source():
    import re
    names = set()
    for path in (REPO / 'configs').glob('*.py'):
        names.update(re.findall(r"checkpoint='checkpoints/([^']+)'",
                                path.read_text()))
    assert names and names <= set(OFFICIAL_WEIGHTS)


def test_metafile_names_each_configs_backbone_weights_and_source():
    import re

    import yaml
    models = yaml.safe_load((REPO / 'metafile.yml').read_text())['Models']
    checked = 0
    for model in models:
        text = (REPO / model['Config']).read_text()
        found = re.findall(r"checkpoint='(checkpoints/[^']+)'", text)
        meta = model['Metadata']
        if 'Backbone Weights' not in meta:
            # the ImageNet configs start from scratch
            assert not found and meta['Training Data'] == 'ImageNet-1k'
            continue
        name = meta['Backbone Weights'].split('/')[-1]
        # a config that inherits its backbone names no file itself
        assert found in ([], [meta['Backbone Weights']]), model['Name']
        assert meta['Backbone Weights Source'] == OFFICIAL_WEIGHTS[name][1]
        checked += 1
    assert checked
