"""publish_model and the converters: slimmed, hashed, never over an input."""
import hashlib
import os

import pytest
import torch

from tests.modules import load_file

publish_model = load_file('tools/model_converters/publish_model.py')
to_official = load_file('tools/model_converters/mmtinyvim_to_official.py')
from_official = load_file('tools/model_converters/official_to_mmtinyvim.py')


def _training_checkpoint(path, ema=True):
    """What mmengine's Runner + EMAHook save: state_dict holds the EMA
    weights, ema_state_dict['module.<k>'] the raw ones."""
    from mmengine.logging import HistoryBuffer, MessageHub
    raw = {'w': torch.ones(3), 'b': torch.zeros(2)}
    averaged = {'w': torch.full((3, ), 0.5), 'b': torch.zeros(2)}
    hub = MessageHub.get_instance('publish_test')
    hub.update_scalar('train/loss', 1.0)
    checkpoint = dict(
        meta=dict(epoch=3, hook_msgs=dict(last_ckpt='/elsewhere/run'),
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict=averaged if ema else raw,
        message_hub=hub.state_dict(),
        optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
        param_schedulers=[dict(last_epoch=3)])
    if ema:
        checkpoint['ema_state_dict'] = {
            'steps': torch.tensor(9), **{f'module.{k}': v
                                         for k, v in raw.items()}}
    assert isinstance(hub.state_dict()['log_scalars']['train/loss'],
                      HistoryBuffer)
    torch.save(checkpoint, path)
    return raw, averaged


@pytest.mark.parametrize('weights', ['auto', 'ema', 'model'])
def test_publish_strips_state_and_names_the_hash(tmp_path, weights, capsys):
    src = tmp_path / 'epoch_3.pth'
    raw, averaged = _training_checkpoint(src)
    final = publish_model.main([str(src), str(tmp_path / 'out' / 'net.pth'),
                                '--weights', weights])
    digest = hashlib.sha256(open(final, 'rb').read()).hexdigest()
    assert os.path.basename(final) == f'net-{digest[:8]}.pth'
    # the hidden temporary file is gone, nothing else was written
    assert os.listdir(tmp_path / 'out') == [os.path.basename(final)]
    published = torch.load(final, weights_only=True)
    assert sorted(published) == ['meta', 'state_dict']
    expected = raw if weights == 'model' else averaged
    assert published['state_dict'].keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(published['state_dict'][key], value)
    assert 'hook_msgs' not in published['meta']
    assert published['meta']['dataset_meta'] == dict(classes=('a', 'b'))
    assert 'optimizer' in capsys.readouterr().out


def test_publish_refuses_bad_inputs(tmp_path):
    src = tmp_path / 'plain.pth'
    _training_checkpoint(src, ema=False)
    with pytest.raises(ValueError, match='no EMA weights'):
        publish_model.publish(str(src), str(tmp_path / 'x.pth'), 'ema')
    with pytest.raises(ValueError, match='would destroy the checkpoint'):
        publish_model.publish(str(src), str(src))
    nan = tmp_path / 'nan.pth'
    torch.save(dict(state_dict={'w': torch.tensor([float('nan')])}), nan)
    with pytest.raises(ValueError, match='NaN/inf'):
        publish_model.publish(str(nan), str(tmp_path / 'y.pth'))
    assert sorted(os.listdir(tmp_path)) == ['nan.pth', 'plain.pth']


def _mm_classifier_checkpoint(path):
    from mmtinyvim.models.zoo import build_classifier
    model, _ = build_classifier('mobilemamba-t2')
    torch.save(dict(state_dict=model.state_dict()), path)


@pytest.mark.parametrize('how', ['same', 'symlink', 'hardlink'])
def test_converters_refuse_to_overwrite_their_input(tmp_path, how):
    src = tmp_path / 'cls.pth'
    _mm_classifier_checkpoint(src)
    before = src.read_bytes()
    dst = tmp_path / 'dst.pth'
    if how == 'same':
        dst = src
    elif how == 'symlink':
        dst.symlink_to(src)
    else:
        os.link(src, dst)
    for tool, args in ((to_official, ['--family', 'mobilemamba']),
                       (from_official, ['--family', 'mobilemamba'])):
        with pytest.raises(SystemExit, match='would destroy'):
            tool.main([str(src), str(dst), *args])
    assert src.read_bytes() == before


def test_converter_writes_through_a_temporary_file(tmp_path, monkeypatch):
    src = tmp_path / 'cls.pth'
    _mm_classifier_checkpoint(src)
    dst = tmp_path / 'official.pth'
    dst.write_bytes(b'previous')

    def fail(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise OSError('disk full')
    monkeypatch.setattr(to_official.torch, 'save', fail)
    with pytest.raises(OSError, match='disk full'):
        to_official.convert(str(src), str(dst), 'mobilemamba')
    assert dst.read_bytes() == b'previous'
    assert sorted(os.listdir(tmp_path)) == ['cls.pth', 'official.pth']
