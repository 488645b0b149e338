"""Orderly end of a (distributed) training run, and a test command that
reports every test file."""
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.modules import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'fpn_tinyvim_s_ade20k.py')


def _train_module():
    return load_file('tools/train.py', 'mmtinyvim_train_tool_for_teardown')


class _FakeRunner:

    def __init__(self, fail):
        self.fail = fail
        # what tools/train.py reads before train(): the run's logger (its
        # filters are set for the run) and the model (pretrained files)
        self.logger = logging.getLogger('fake_runner')
        self.model = torch.nn.Linear(1, 1)

    def train(self):
        if self.fail:
            raise RuntimeError('training failed')


@pytest.mark.parametrize('fail', [False, True])
def test_train_tool_always_tears_down(fail, tmp_path, monkeypatch):
    train = _train_module()
    calls = []
    runner = _FakeRunner(fail)
    monkeypatch.setattr(train.Runner, 'from_cfg',
                        staticmethod(lambda cfg: runner))
    monkeypatch.setattr(
        train, 'teardown_distributed',
        lambda r, barrier: calls.append((r, barrier)))
    argv = [CONFIG, '--work-dir', str(tmp_path)]
    if fail:
        with pytest.raises(RuntimeError, match='training failed'):
            train.main(argv)
    else:
        train.main(argv)
    # after an error no barrier: the other ranks may never reach it
    assert calls == [(runner, not fail)]


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


SCRIPT = '''
import multiprocessing, os, sys
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from mmtinyvim.engine import NonFiniteGuardOptimWrapper, teardown_distributed

backend = sys.argv[1]
dist.init_process_group(backend)
rank = dist.get_rank()
device = torch.device('cpu')
if backend == 'nccl':
    device = torch.device('cuda', rank)
    torch.cuda.set_device(device)
loader = DataLoader(list(range(8)), batch_size=2, num_workers=2,
                    persistent_workers=True)
for _ in range(2):
    for batch in loader:
        dist.all_reduce(batch.float().to(device))
assert multiprocessing.active_children(), 'persistent workers expected'

# the non-finite guard: a NaN loss on rank 0 only skips the step on every
# rank (the ranks agree), so their weights stay equal
model = torch.nn.Linear(2, 1).to(device)
torch.nn.init.constant_(model.weight, 1.0)
wrapper = NonFiniteGuardOptimWrapper(
    torch.optim.SGD(model.parameters(), lr=0.1))
loss = model(torch.ones(1, 2, device=device)).sum()
wrapper.update_params(loss * float('nan') if rank == 0 else loss)
assert wrapper.skipped_nonfinite == 1, wrapper.skipped_nonfinite
assert bool((model.weight == 1.0).all()), model.weight

class _Loop:
    dataloader = loader

class _Runner:
    _train_loop = _Loop()
    _val_loop = _test_loop = None

teardown_distributed(_Runner())
assert not dist.is_initialized(), 'process group left'
assert not multiprocessing.active_children(), 'workers left'
print(f'TEARDOWN-OK rank {rank}', flush=True)
'''


def _run_two_processes(tmp_path, backend, load_cpu=False):
    script = tmp_path / 'run.py'
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [ROOT] + [p for p in os.environ.get(
                       'PYTHONPATH', '').split(os.pathsep) if p]))
    burners = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
               for _ in range(os.cpu_count() or 2)] if load_cpu else []
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'torch.distributed.run',
             '--nproc_per_node=2', f'--master_port={_free_port()}',
             str(script), backend], capture_output=True, text=True, env=env,
            timeout=600)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert 'TEARDOWN-OK rank 0' in output and 'TEARDOWN-OK rank 1' in output
    assert 'terminate called' not in output


def test_two_gloo_processes_end_cleanly_under_cpu_load(tmp_path):
    """Two gloo ranks with DataLoader workers, while busy processes load
    every core: both exit 0 with the group destroyed and workers joined;
    the non-finite guard's ranks agree on skipping."""
    _run_two_processes(tmp_path, 'gloo', load_cpu=True)


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason='needs 2 CUDA GPUs')
def test_two_nccl_processes_end_cleanly(tmp_path):
    _run_two_processes(tmp_path, 'nccl')


def test_test_command_runs_every_test_file_when_one_fails(tmp_path):
    scripts = tmp_path / 'scripts'
    scripts.mkdir()
    shutil.copy(os.path.join(ROOT, 'scripts', 'test.sh'), scripts)
    (scripts / 'setup_env.sh').write_text('exit 0\n')
    venv_bin = tmp_path / 'venv' / 'bin'
    venv_bin.mkdir(parents=True)
    log = tmp_path / 'calls.txt'
    # the first pytest run fails, the second passes
    (venv_bin / 'python').write_text(textwrap.dedent(f'''\
        #!/usr/bin/env bash
        echo "$*" >> {log}
        [ "$(wc -l < {log})" -gt 1 ]
        '''))
    (venv_bin / 'python').chmod(0o755)
    result = subprocess.run(
        ['bash', str(scripts / 'test.sh')], capture_output=True, text=True,
        env=dict(os.environ, MMTINYVIM_VENV=str(tmp_path / 'venv')))
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and 'tests/test_scan_triton.py' in calls[1]
    assert result.returncode != 0
    assert 'FAILED: tests' in result.stderr
