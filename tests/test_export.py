"""LiteRT conversion of a classifier, checked with the LiteRT interpreter.

The conversion tests need litert-torch, which is not in the project's test
environment (it brings a transformers release that breaks mmpretrain's
imports): ``bash scripts/test_mobile.sh`` makes an environment of its own
(torch CPU, litert-torch, ai-edge-litert) and runs this file there. Without
the converter they are skipped (under MMTINYVIM_REQUIRE_LITERT=1, which the
script sets, they fail instead); the message the tool gives then is
checked in every environment."""
import os
import re
import sys

import pytest
import torch

from tests.modules import load_file

p2l = load_file('tools/deployment/pytorch2litert.py')
SKIP = ('litert-torch is not installed here (it lives in its own '
        'environment: bash scripts/test_mobile.sh)')
# size of the traced image: the graph lowering, not the size, costs the time
SHAPE = ('64', '64')


def _converter():
    if os.environ.get('MMTINYVIM_REQUIRE_LITERT') == '1':
        # scripts/test_mobile.sh: the converter must be there, a skip would
        # hide a broken environment
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
        return
    pytest.importorskip('litert_torch', reason=SKIP)
    pytest.importorskip('ai_edge_litert.interpreter', reason=SKIP)


def _printed_error(out):
    found = re.search(r'max\|LiteRT - PyTorch\| / std = (\S+)', out)
    assert found, out
    return float(found.group(1))


def _checkpoint(variant, path):
    """A classifier with its BatchNorm statistics moved off their
    initialisation (so that folding them matters), saved as mmpretrain
    would; returns its (unfolded) PyTorch model."""
    torch.manual_seed(1)
    model = p2l.Classifier(variant, scan_backend='torch')
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return model.eval()


def test_tinyvim_classifier_to_litert_matches_pytorch(tmp_path, capsys):
    _converter()
    out = tmp_path / 'tinyvim_s.tflite'
    p2l.main(['tinyvim-s', '--out', str(out), '--shape', *SHAPE,
              '--verify'])
    printed = capsys.readouterr().out
    assert 'litert-torch ' in printed and 'ai-edge-litert ' in printed
    assert _printed_error(printed) < 1e-4
    assert out.stat().st_size > 0


def test_mobilemamba_checkpoint_to_litert_gives_its_logits(tmp_path, capsys):
    """The weights of --checkpoint are the ones converted: the LiteRT
    logits are those of the saved (unfolded) classifier."""
    _converter()
    ckpt, out = tmp_path / 'mm.pth', tmp_path / 'mm.tflite'
    saved = _checkpoint('mobilemamba-t2', ckpt)
    p2l.main(['mobilemamba-t2', '--out', str(out), '--checkpoint', str(ckpt),
              '--shape', *SHAPE, '--verify'])
    assert _printed_error(capsys.readouterr().out) < 1e-4
    images = p2l.example_input('mobilemamba-t2', (64, 64))
    with torch.no_grad():
        expected = saved(images).numpy()
    result = p2l.run_litert(str(out), images)
    assert abs(result - expected).max() / expected.std() < 1e-4


def test_without_the_converter_the_tool_says_how_to_get_it(
        tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'litert_torch', None)  # not importable
    out = tmp_path / 'm.tflite'
    with pytest.raises(ImportError, match='litert-torch is not installed.*'
                       'scripts/test_mobile.sh'):
        p2l.main(['mobilemamba-t2', '--out', str(out), '--shape', *SHAPE])
    assert not out.exists()


def test_bad_checkpoint_or_shape_is_refused_before_converting(tmp_path):
    ckpt = tmp_path / 'tinyvim_s.pth'
    torch.save(dict(state_dict={'backbone.nothing': torch.zeros(1)}), ckpt)
    with pytest.raises(RuntimeError, match='does not fit.*Nothing was'):
        p2l.build_classifier('tinyvim-s', str(ckpt))
    with pytest.raises(ValueError, match='--shape'):
        p2l.example_input('tinyvim-s', (16, 16))
    with pytest.raises(ValueError, match='same'):
        p2l.main(['tinyvim-s', '--out', str(ckpt), '--checkpoint',
                  str(ckpt)])
