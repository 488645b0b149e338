"""Checkpoints: weights_only loading of mmengine files with a scoped
allow-list, clear refusals of wrong, truncated, unsafe or mis-shaped files,
and nothing ever loaded partially."""
import argparse
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import mmtinyvim  # noqa: F401  (registers the modules)
from mmtinyvim.models.backbones import MobileMamba, TinyViM
from mmtinyvim.models.checkpoint_family import family_module
from mmtinyvim.models.zoo import build_classifier
from mmtinyvim.utils.checkpoint import (restore_mmengine_loaders,
                                        use_safe_loader_in_mmengine,
                                        safe_torch_load, strict_load,
                                        unwrap_state_dict)

from tests.modules import load_file


class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.linear(x).pow(2).mean())


class _Points(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(x=torch.full((2, ), float(index)))


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    """A checkpoint written by mmengine 0.10.7's Runner (message hub with
    HistoryBuffers and numpy values, optimizer, schedulers)."""
    work_dir = tmp_path_factory.mktemp('runner')
    scopes = DefaultScope._instance_dict.copy()
    runner = Runner(
        model=_TinyModel(), work_dir=str(work_dir),
        experiment_name='checkpoint_fixture',
        train_dataloader=dict(dataset=_Points(), batch_size=2,
                              sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1],
                             by_epoch=False),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           by_epoch=False)))
    runner.train()
    # the runner made 'mmengine' the default scope; later builds need theirs
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)
    return str(work_dir / 'iter_2.pth')


def test_mmengine_checkpoint_needs_the_allow_list(mmengine_checkpoint):
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer|getattr'
                       '|numpy'):
        torch.load(mmengine_checkpoint, weights_only=True)
    checkpoint = safe_torch_load(mmengine_checkpoint)
    assert checkpoint['meta']['iter'] == 2
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert history.mean() == pytest.approx(history.data[0].mean())
    assert set(unwrap_state_dict(checkpoint)) == {'linear.weight',
                                                  'linear.bias'}
    # the allow-list was scoped to that one load: torch's default is intact
    with pytest.raises(pickle.UnpicklingError):
        torch.load(mmengine_checkpoint, weights_only=True)


@pytest.fixture
def safe_mmengine_loading():
    # the documented opt-in (the configs' SafeLoadingHook, our tools):
    # importing the package no longer does it
    previous = use_safe_loader_in_mmengine()
    yield
    restore_mmengine_loaders(previous)


def test_mmengine_loader_goes_through_safe_load(mmengine_checkpoint,
                                                tmp_path,
                                                safe_mmengine_loading):
    checkpoint = _load_checkpoint(mmengine_checkpoint, map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    truncated = _truncate(mmengine_checkpoint, tmp_path)
    with pytest.raises(RuntimeError, match='truncated'):
        _load_checkpoint(truncated, map_location='cpu')


def _truncate(path, tmp_path):
    data = open(path, 'rb').read()
    target = tmp_path / ('truncated_' + os.path.basename(path))
    target.write_bytes(data[:len(data) // 2])
    return str(target)


def test_numpy1_names_of_old_checkpoints_load(tmp_path):
    """Checkpoints saved under numpy 1 name ``numpy.core.multiarray``."""
    path = tmp_path / 'numpy2.pth'
    torch.save({'array': np.arange(3.0), 'scalar': np.float64(2.5)}, path)
    with zipfile.ZipFile(path) as source:
        entries = {info: source.read(info) for info in source.infolist()}
    old = tmp_path / 'numpy1.pth'
    with zipfile.ZipFile(old, 'w', zipfile.ZIP_STORED) as target:
        for info, data in entries.items():
            if info.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray',
                                    b'numpy.core.multiarray')
            target.writestr(info, data)
    loaded = safe_torch_load(str(old))
    assert loaded['array'].tolist() == [0.0, 1.0, 2.0]
    assert loaded['scalar'] == 2.5


def test_official_checkpoint_with_namespace_loads(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': {'w': torch.ones(1)},
                'args': argparse.Namespace(model='tinyvim_s')}, path)
    assert safe_torch_load(str(path))['args'].model == 'tinyvim_s'


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('echo unsafe',))


class _ReachesAttribute:

    def __reduce__(self):
        return (getattr, (argparse.Namespace, '__init__'))


@pytest.mark.parametrize('payload,message', [
    (_RunsCode(), r'contains the Python object \S*system, which is not on '
     "mmtinyvim's allow-list"),
    (pathlib.PurePosixPath('a'), r'contains the Python object '
     r"pathlib\S*PurePosixPath, which is not on mmtinyvim's allow-list"),
    (_ReachesAttribute(), r"calls getattr\(Namespace, '__init__'\); only the "
     "statistics methods of mmengine's HistoryBuffer"),
])
def test_unsafe_objects_are_refused(payload, message, tmp_path):
    path = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {}, 'extra': payload}, path)
    with pytest.raises(RuntimeError, match=message):
        safe_torch_load(str(path))


def test_broken_files_are_named(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.randn(64, 64)}, good)
    cases = {
        'missing.pth': (FileNotFoundError, 'Checkpoint file not found'),
        'empty.pth': (RuntimeError, r'the file is empty \(0 bytes\)'),
        'text.pth': (RuntimeError, 'it is not a PyTorch checkpoint'),
    }
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    for name, (error, message) in cases.items():
        with pytest.raises(error, match=message):
            safe_torch_load(str(tmp_path / name))
    with pytest.raises(RuntimeError, match='the file is truncated .* '
                       'end-of-archive record is missing'):
        safe_torch_load(_truncate(str(good), tmp_path))


@pytest.mark.parametrize('checkpoint,message', [
    ([torch.ones(1)], 'must be a dict of tensors or a dict wrapping one, '
     'got list'),
    ({'state_dict': {}}, 'holds no tensors'),
    ({'epoch': 3, 'lr': 0.1}, "no wrapper among .* non-tensor entries "
     r"\['epoch', 'lr'\]"),
])
def test_unwrap_refuses_non_state_dicts(checkpoint, message):
    with pytest.raises(TypeError, match=message):
        unwrap_state_dict(checkpoint)


def _load_pretrained(model_cls, arch, state_dict, tmp_path, **kwargs):
    """Build ``model_cls`` with a Pretrained init_cfg of ``state_dict``;
    returns (model, its state before loading, the load error)."""
    path = tmp_path / 'pretrained.pth'
    torch.save({'state_dict': state_dict}, path)
    model = model_cls(arch=arch, **kwargs, init_cfg=dict(
        type='Pretrained', checkpoint=str(path)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError) as error:
        model.init_weights()
    return model, before, str(error.value)


def _unchanged(model, before):
    return all(torch.equal(v, before[k])
               for k, v in model.state_dict().items())


@pytest.mark.parametrize('target,source,expected', [
    # wrong family, both directions
    ((TinyViM, 's'), (MobileMamba, 't2'),
     ('784 missing keys: network.0.0.layer_scale, ',
      '528 unexpected keys: patch_embed.4.c.weight, ')),
    ((MobileMamba, 't2'), (TinyViM, 's'),
     ('528 missing keys: patch_embed.4.c.weight, ',
      '804 unexpected keys: network.0.0.layer_scale, ')),
    # wrong variant of the right family
    ((TinyViM, 's'), (TinyViM, 'b'),
     ('272 missing keys: network.0.2.op.x_proj_weight, ',
      '391 shape mismatches: network.1.proj.c.weight: checkpoint '
      '(96, 48, 3, 3) vs model (64, 48, 3, 3), ')),
    ((MobileMamba, 't2'), (MobileMamba, 's6'),
     ('463 shape mismatches: patch_embed.0.c.weight: checkpoint '
      '(24, 3, 3, 3) vs model (18, 3, 3, 3), ', )),
])
def test_wrong_family_or_variant_loads_nothing(target, source, expected,
                                               tmp_path):
    source_cls, source_arch = source
    state = source_cls(arch=source_arch).state_dict()
    model, before, message = _load_pretrained(*target, state, tmp_path)
    print(f'\n{target[0].__name__}-{target[1]} <- '
          f'{source_cls.__name__}-{source_arch}: {message[:200]}...')
    assert message.startswith(f"Checkpoint '{tmp_path / 'pretrained.pth'}' "
                              f'does not fit {target[0].__name__} '
                              f'({target[1]}): ')
    assert all(fragment in message for fragment in expected)
    assert message.endswith('Is it a checkpoint of this family and variant? '
                            'Nothing was loaded.')
    assert _unchanged(model, before)


def test_one_wrong_shape_is_named_and_nothing_loads(tmp_path):
    state = TinyViM(arch='s').state_dict()
    key = 'network.4.8.op.A_logs'
    state[key] = state[key][:, :4].clone()
    for value in state.values():  # every other tensor would change the model
        if value.is_floating_point():
            value.add_(1.0)
    model, before, message = _load_pretrained(TinyViM, 's', state, tmp_path)
    assert message.endswith('Nothing was loaded.')
    assert (f'1 shape mismatches: {key}: checkpoint (336, 4) vs model '
            '(336, 8)') in message
    assert _unchanged(model, before)


def test_strict_load_reports_all_problem_kinds_at_once():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    state = {'0.weight': torch.ones(2, 4), '0.bias': torch.ones(2),
             'extra.weight': torch.ones(1)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError) as error:
        strict_load(model, state, what='my.pth')
    message = str(error.value)
    assert message.startswith('my.pth does not fit Sequential: ')
    assert '2 missing keys: 1.weight, 1.bias' in message
    assert '1 unexpected keys: extra.weight' in message
    assert ('1 shape mismatches: 0.weight: checkpoint (2, 4) vs model '
            '(2, 3)') in message
    assert _unchanged(model, before)


def _load_converter(name):
    return load_file(f'tools/model_converters/{name}.py')


@pytest.mark.parametrize('variant,wrap', [
    # TinyViM's main.py saves model / model_ema / args; MobileMamba's release
    # files are flat state dicts, its training script wraps net / net_E
    ('tinyvim-s', lambda sd: {'model': sd, 'model_ema': sd, 'epoch': 299,
                              'args': argparse.Namespace(model='s')}),
    ('mobilemamba-t2', lambda sd: {'net': sd, 'net_E': sd}),
])
def test_converter_round_trips_the_official_layout(variant, wrap, tmp_path):
    to_mm = _load_converter('official_to_mmtinyvim')
    to_official = _load_converter('mmtinyvim_to_official')
    family = variant.split('-')[0]
    torch.manual_seed(0)
    classifier, _ = build_classifier(variant)
    official = family_module(family).to_official_classifier(
        classifier.state_dict())
    source = tmp_path / 'official.pth'
    torch.save(wrap(official), source)

    converted = tmp_path / 'mmpretrain.pth'
    to_mm.main([str(source), str(converted), '--family', family])
    checkpoint = safe_torch_load(str(converted))
    fresh, _ = build_classifier(variant)
    strict_load(fresh, unwrap_state_dict(checkpoint))
    assert all(torch.equal(v, classifier.state_dict()[k])
               for k, v in fresh.state_dict().items())

    back = tmp_path / 'back.pth'
    to_official.main([str(converted), str(back), '--family', family])
    restored = unwrap_state_dict(safe_torch_load(str(back)))
    assert list(restored) == list(official)
    assert all(torch.equal(restored[k], official[k]) for k in official)


def test_converter_refuses_wrong_family_and_broken_files(tmp_path):
    to_mm = _load_converter('official_to_mmtinyvim')
    official = family_module('tinyvim').to_official_classifier(
        build_classifier('tinyvim-s')[0].state_dict())
    source = tmp_path / 'tinyvim_s.pth'
    torch.save({'model': official}, source)
    out = str(tmp_path / 'out.pth')
    with pytest.raises(SystemExit, match=r'error: .*tinyvim_s\.pth is a '
                       r'TinyViM checkpoint \(keys network\.0\.0\.'
                       r'layer_scale, .*pass --family tinyvim'):
        to_mm.main([str(source), out, '--family', 'mobilemamba'])
    with pytest.raises(SystemExit, match='error: Cannot load checkpoint .*: '
                       'the file is truncated'):
        to_mm.main([_truncate(str(source), tmp_path), out, '--family',
                    'tinyvim'])
    with pytest.raises(SystemExit, match='error: Checkpoint file not found'):
        to_mm.main([str(tmp_path / 'none.pth'), out, '--family', 'tinyvim'])
    assert not os.path.exists(out)
