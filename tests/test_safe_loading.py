"""The checkpoint allow-list is scoped to one load call in one thread,
rebuilds allowed objects without touching class-level state, and covers
every mmengine checkpoint scheme."""
import argparse
import json
import os
import threading

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from mmtinyvim.utils import checkpoint as ckpt
from mmtinyvim.utils.checkpoint import safe_torch_load

_ORIGINAL_LOAD = torch.load


@pytest.fixture(autouse=True, scope='module')
def safe_loader_in_mmengine():
    previous = ckpt.use_safe_loader_in_mmengine()  # the explicit opt-in
    yield
    ckpt.restore_mmengine_loaders(previous)


class _Payload:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.fixture
def namespace_file(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save(dict(model=dict(w=torch.ones(2)),
                    args=argparse.Namespace(lr=0.1)), path)
    return str(path)


@pytest.fixture
def keep_class_state():
    methods = dict(HistoryBuffer._statistics_methods)
    yield
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(methods)


def test_torchs_allow_list_is_as_before_after_each_load(
        namespace_file, tmp_path):
    """The allow-list lives inside the load only: afterwards (also after a
    refused load) torch.load refuses the Namespace file again."""
    before = set(map(repr, torch.serialization.get_safe_globals()))
    assert isinstance(safe_torch_load(namespace_file)['args'],
                      argparse.Namespace)
    assert set(map(repr, torch.serialization.get_safe_globals())) == before
    with pytest.raises(Exception, match='argparse.Namespace'):
        _ORIGINAL_LOAD(namespace_file, weights_only=True)
    evil = tmp_path / 'evil.pth'
    torch.save(dict(x=_Payload()), evil)
    with pytest.raises(RuntimeError, match="not on mmtinyvim's allow-list"):
        safe_torch_load(str(evil))
    assert set(map(repr, torch.serialization.get_safe_globals())) == before


def test_concurrent_project_loads(namespace_file):
    errors, results = [], []

    def load():
        try:
            for _ in range(20):
                results.append(safe_torch_load(namespace_file)['args'].lr)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [0.1] * 80


def test_users_safe_globals_are_left_as_they_were(namespace_file):
    from torch import _weights_only_unpickler as unpickler
    saved = set(unpickler._marked_safe_globals_set)
    try:
        torch.serialization.add_safe_globals([argparse.Namespace])
        safe_torch_load(namespace_file)
        assert argparse.Namespace in torch.serialization.get_safe_globals()
        torch.serialization.clear_safe_globals()
        safe_torch_load(namespace_file)
        assert torch.serialization.get_safe_globals() == []
    finally:
        unpickler._marked_safe_globals_set = saved


def test_history_buffers_are_rebuilt(tmp_path):
    path = tmp_path / 'hub.pth'
    torch.save(dict(message_hub=dict(log_scalars=dict(
        loss=HistoryBuffer([1.0, 2.0], [1, 1])))), path)
    buffer = safe_torch_load(str(path))['message_hub']['log_scalars']['loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.mean() == 1.5 and buffer.max() == 2.0
    buffer.update(3.0)
    assert buffer.current() == 3.0


@pytest.mark.parametrize('state,message', [
    (lambda self: dict(self.__dict__, statistics_methods=dict(
        mean=HistoryBuffer.max)), 'statistics_methods other than'),
    (lambda self: dict(self.__dict__, _statistics_methods={}),
     r"fields \['_statistics_methods'\]"),
    (lambda self: dict(self.__dict__, max_length='x'), 'malformed fields'),
])
def test_crafted_history_buffer_cannot_touch_the_class(
        state, message, tmp_path, monkeypatch, keep_class_state):
    path = tmp_path / 'crafted.pth'
    monkeypatch.setattr(HistoryBuffer, '__getstate__', state)
    torch.save(dict(message_hub=HistoryBuffer([1.0, 5.0], [1, 1])), path)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match=message):
        safe_torch_load(str(path))
    # every later "mean" still is the mean
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean
    assert HistoryBuffer([1.0, 5.0], [1, 1]).statistics('mean') == 3.0


def test_crafted_namespace_is_refused(tmp_path, monkeypatch):
    path = tmp_path / 'ns.pth'
    namespace = argparse.Namespace(lr=0.1)
    monkeypatch.setattr(argparse.Namespace, '__getstate__',
                        lambda self: {'__class__': 'dict'}, raising=False)
    torch.save(dict(args=namespace), path)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match='not plain attributes'):
        safe_torch_load(str(path))


def test_every_mmengine_scheme_goes_through_the_safe_loader():
    loaders = set(CheckpointLoader._schemes.values())
    assert loaders <= set(ckpt.SAFE_SCHEMES.values()), loaders
    for prefix in ('', 'http://', 'https://', 'open-mmlab://',
                   'openmmlab://', 'torchvision://', 'modelzoo://',
                   'mmcls://', 's3://', 'petrel://', 'pavi://'):
        loader = CheckpointLoader._get_checkpoint_loader(prefix + 'x.pth')
        assert loader.__module__ == ckpt.__name__, prefix


def _fake_download(monkeypatch, tmp_path, source):
    downloads = []

    def download(url, dst, hash_prefix=None, progress=True):
        downloads.append(url)
        with open(source, 'rb') as src, open(dst, 'wb') as out:
            out.write(src.read())

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    return downloads


def test_http_checkpoint_loads_through_the_allow_list(tmp_path, monkeypatch,
                                                      namespace_file):
    downloads = _fake_download(monkeypatch, tmp_path, namespace_file)
    loaded = CheckpointLoader.load_checkpoint(
        'https://example.invalid/models/official.pth', map_location='cpu')
    assert isinstance(loaded['args'], argparse.Namespace)
    assert downloads == ['https://example.invalid/models/official.pth']


def test_http_payload_is_refused(tmp_path, monkeypatch):
    evil = tmp_path / 'evil.pth'
    torch.save(dict(x=_Payload()), evil)
    _fake_download(monkeypatch, tmp_path, str(evil))
    with pytest.raises(RuntimeError, match="not on mmtinyvim's allow-list"):
        CheckpointLoader.load_checkpoint('http://example.invalid/evil.pth')


def test_open_mmlab_scheme_under_mmengine_home(tmp_path, monkeypatch):
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    (home / 'open_mmlab.json').write_text(json.dumps(
        dict(toy='toy.pth', evil='evil.pth')))
    torch.save(dict(state_dict=dict(w=torch.ones(1)),
                    meta=dict(hub=HistoryBuffer([1.0], [1]),
                              step=np.int64(3))), home / 'toy.pth')
    torch.save(dict(x=_Payload()), home / 'evil.pth')
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    toy = CheckpointLoader.load_checkpoint('open-mmlab://toy')
    assert type(toy['meta']['hub']) is HistoryBuffer
    with pytest.raises(RuntimeError, match="not on mmtinyvim's allow-list"):
        CheckpointLoader.load_checkpoint('openmmlab://evil')
