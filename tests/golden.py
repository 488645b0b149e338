"""Access to ../shared/golden (official outputs) and the parity measure."""
import os
from pathlib import Path

import pytest
import torch

from mmtinyvim.engine import plain_inference
from tests.modules import load_file

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get('MMTINYVIM_GOLDEN',
                                 REPO.parent / 'shared' / 'golden'))


def golden_dir() -> Path:
    """The golden data directory. Without it the calling test is skipped
    with the reason (a clone without ../shared); with
    MMTINYVIM_REQUIRE_GOLDEN=1 (CI) its absence is an error instead."""
    if not (GOLDEN_DIR / 'golden_weights.py').is_file():
        msg = (f'golden data not found at {GOLDEN_DIR} (golden_weights.py '
               'missing): set MMTINYVIM_GOLDEN to the shared/golden '
               'directory to run the parity tests')
        if os.environ.get('MMTINYVIM_REQUIRE_GOLDEN') == '1':
            raise FileNotFoundError(msg)
        pytest.skip(msg)
    return GOLDEN_DIR


def golden_weights_module():
    return load_file(golden_dir() / 'golden_weights.py')


def load_golden(name: str) -> dict:
    """name: 'tinyvim_S', 'mobilemamba_B1', ..."""
    return torch.load(golden_dir() / f'{name}.pt', weights_only=True)


def make_input(spec: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(spec['generator_seed'])
    return torch.randn(spec['shape'], generator=g)


def manifest(golden: dict, key: str = 'manifest'):
    return [(k, tuple(s), d) for k, s, d in golden[key]]


def weights_for(golden: dict, key: str = 'manifest') -> dict:
    return golden_weights_module().make_weights(manifest(golden, key))


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / std(ref)."""
    out, ref = out.double(), ref.double()
    return float((out - ref).abs().max() / ref.std())


def dense_errors(outputs, samples):
    """Per output map: max|Δ|/std at the stored positions, plus the error of
    the whole-map mean and std, all relative to the reference std."""
    errs = []
    for out, ref in zip(outputs, samples):
        assert tuple(out.shape) == tuple(ref['shape']), (out.shape,
                                                          ref['shape'])
        flat = out.detach().double().flatten()
        std = float(ref['std'])
        err = float((flat[ref['index']] -
                     ref['values'].double()).abs().max()) / std
        err_mean = abs(float(flat.mean()) - float(ref['mean'])) / std
        err_std = abs(float(flat.std()) - std) / std
        errs.append(max(err, err_mean, err_std))
    return errs


# ``model`` with every backbone's default inference path off: its inference
# calls run the network as built (the reference that folded or graphed
# outputs are compared with)
plain_network = plain_inference
