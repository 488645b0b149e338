"""LiteRT conversion of a classifier, checked with the LiteRT interpreter.

Needs litert-torch (not in the project's test environment: it pulls in
transformers, which breaks mmpretrain's imports); skipped without it."""
import pytest
import torch

from tests.modules import load_file

pytest.importorskip('litert_torch')
p2l = load_file('tools/deployment/pytorch2litert.py')


def test_mobilemamba_classifier_to_litert_matches_pytorch(tmp_path, capsys):
    torch.manual_seed(0)
    out = str(tmp_path / 'mm.tflite')
    p2l.main(['mobilemamba-t2', '--out', out, '--shape', '64', '64',
              '--verify'])
    assert 'max|LiteRT - PyTorch| / std' in capsys.readouterr().out
    model, images = p2l.convert('mobilemamba-t2', out, shape=(64, 64))
    assert p2l.compare_with_litert(model, out, images) < 1e-4
