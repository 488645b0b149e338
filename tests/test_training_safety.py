"""Crash-safe checkpoints, the work_dir claim and the non-finite guard
(mmtinyvim.engine: checkpoint_hook, work_dir, nonfinite) on a toy mmengine Runner."""
import errno
import glob
import itertools
import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmtinyvim  # noqa: F401  (registers the hooks)
from mmtinyvim.engine.checkpoint_hook import (CheckpointWriteError,
                                              SafeCheckpointHook)
from mmtinyvim.engine.nonfinite import NonFiniteLossError
from mmtinyvim.engine.work_dir import (CLAIM_FILE, WorkDirClaimedError,
                                       claim_work_dir, release_work_dir)
from mmtinyvim.utils.checkpoint import (restore_mmengine_loaders,
                                        safe_torch_load,
                                        use_safe_loader_in_mmengine)


@pytest.fixture(autouse=True)
def safe_mmengine_loading():
    # these runners resume mmengine checkpoints as the shipped configs do,
    # whose SafeLoadingHook opts mmengine into the safe loader; the import
    # no longer does it
    previous = use_safe_loader_in_mmengine()
    yield
    restore_mmengine_loaders(previous)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_names = itertools.count()


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        if mode == 'loss':
            out = self.linear(x)
            return dict(loss_main=out.pow(2).mean(),
                        loss_aux=0.1 * out.abs().mean())
        return [self.linear(x).sum().detach()]


class _Points(torch.utils.data.Dataset):
    """Sample ``i`` is ``(i, i)``; indices in ``nan_at`` are NaN."""

    def __init__(self, nan_at=()):
        self.nan_at = set(nan_at)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        value = float('nan') if index in self.nan_at else float(index) / 8
        return dict(x=torch.full((2, ), value))


class _RisingScore(BaseMetric):
    """A score that improves at every validation (a new best each time)."""
    calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        type(self).calls += 1
        return dict(score=float(type(self).calls))


@pytest.fixture(autouse=True)
def _keep_default_scope():
    scopes = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)


def _runner(work_dir, max_iters=4, nan_at=(), checkpoint=None, resume=False,
            optim=None, guard=True, claim=True, val=False, seed=0):
    hooks = dict(checkpoint=dict(dict(type='SafeCheckpointHook', interval=1,
                                      by_epoch=False, max_keep_ckpts=1),
                                 **(checkpoint or {})),
                 logger=dict(type='LoggerHook', interval=1))
    optim = optim or dict(optimizer=dict(type='SGD', lr=0.1))
    if guard:
        hooks['nonfinite_guard'] = dict(type='NonFiniteGuardHook')
        optim = dict(dict(type='NonFiniteGuardOptimWrapper',
                          max_consecutive_skips=3), **optim)
    if claim:
        hooks['work_dir_claim'] = dict(type='WorkDirClaimHook')
    extra = {}
    if val:
        extra = dict(
            val_dataloader=dict(dataset=_Points(), batch_size=4,
                                sampler=dict(type='DefaultSampler',
                                             shuffle=False),
                                collate_fn=dict(type='default_collate')),
            val_cfg=dict(), val_evaluator=Evaluator(_RisingScore()))
    return Runner(
        model=_Toy(), work_dir=str(work_dir),
        experiment_name=f'safety_{next(_names)}',
        train_dataloader=dict(dataset=_Points(nan_at), batch_size=1,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters,
                       val_interval=1),
        optim_wrapper=optim,
        default_hooks=hooks, resume=resume, randomness=dict(seed=seed),
        **extra)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _die_while_writing(monkeypatch, when):
    """Make LocalBackend.put write half of the file, then 'die', on the
    put calls for which ``when(path)`` is true."""
    put = LocalBackend.put

    def put_then_die(self, obj, filepath):
        if when(str(filepath)):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise _Killed(filepath)
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put_then_die)


def _last_checkpoint(work_dir):
    with open(os.path.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _log_text(work_dir):
    return ''.join(open(p).read() for p in
                   glob.glob(os.path.join(work_dir, '*', '*.log')))


def test_kill_during_a_save_keeps_the_previous_checkpoint(tmp_path,
                                                          monkeypatch):
    runner = _runner(tmp_path, max_iters=4, claim=False)
    _die_while_writing(monkeypatch, lambda p: 'iter_3' in p)
    with pytest.raises(_Killed):
        runner.train()
    # max_keep_ckpts=1: mmengine deletes iter_2 first and writes iter_3 in
    # place; here iter_2 stays complete and is what last_checkpoint names
    assert _last_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert safe_torch_load(str(tmp_path / 'iter_2.pth'))['meta']['iter'] == 2
    assert not (tmp_path / 'iter_3.pth').exists()

    monkeypatch.undo()
    resumed = _runner(tmp_path, max_iters=4, resume=True, claim=False)
    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').exists()
    assert not glob.glob(str(tmp_path / '.*tmp*'))  # no temporary left over
    assert not (tmp_path / 'iter_2.pth').exists()  # rotation still works


def test_old_checkpoints_are_deleted_after_the_new_one_is_complete(
        tmp_path, monkeypatch):
    order = []
    remove = LocalBackend.remove
    monkeypatch.setattr(LocalBackend, 'remove',
                        lambda self, p: (order.append(('remove', str(p))),
                                         remove(self, p)))
    replace = os.replace
    monkeypatch.setattr(os, 'replace',
                        lambda a, b: (order.append(('replace', str(b))),
                                      replace(a, b)))
    _runner(tmp_path, max_iters=2, claim=False).train()
    steps = [(op, os.path.basename(p)) for op, p in order]
    assert steps == [('replace', 'iter_1.pth'),
                     ('replace', 'last_checkpoint'),
                     ('replace', 'iter_2.pth'),
                     ('replace', 'last_checkpoint'),
                     ('remove', 'iter_1.pth')]


def test_resume_skips_a_truncated_newest_checkpoint(tmp_path):
    _runner(tmp_path, max_iters=3, claim=False,
            checkpoint=dict(max_keep_ckpts=3)).train()
    newest = tmp_path / 'iter_3.pth'
    newest.write_bytes(newest.read_bytes()[:1000])  # an interrupted copy
    resumed = _runner(tmp_path, max_iters=4, resume=True, claim=False,
                      checkpoint=dict(max_keep_ckpts=3))
    resumed.train()
    log = _log_text(str(tmp_path))
    assert f'skipping checkpoint {newest}' in log
    assert 'resuming from the newest intact checkpoint' in log
    # iteration 3 was retrained from iter_2, not from the broken file
    assert safe_torch_load(str(tmp_path / 'iter_4.pth'))['meta']['iter'] == 4


def test_resume_when_last_checkpoint_names_a_deleted_file(tmp_path):
    _runner(tmp_path, max_iters=2, claim=False).train()
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))
    resumed = _runner(tmp_path, max_iters=3, resume=True, claim=False)
    resumed.train()
    assert 'iter_9.pth: missing' in _log_text(str(tmp_path))
    assert resumed.iter == 3
    assert _last_checkpoint(tmp_path) == str(tmp_path / 'iter_3.pth')


def test_a_new_best_is_written_before_the_previous_best_is_removed(
        tmp_path, monkeypatch):
    _RisingScore.calls = 0
    runner = _runner(tmp_path, max_iters=3, claim=False, val=True,
                     checkpoint=dict(save_best='score', rule='greater'))
    _die_while_writing(monkeypatch, lambda p: 'best_score_iter_2' in p)
    with pytest.raises(_Killed):
        runner.train()
    bests = sorted(os.path.basename(p)
                   for p in glob.glob(str(tmp_path / 'best_*.pth')))
    assert bests == ['best_score_iter_1.pth']
    safe_torch_load(str(tmp_path / 'best_score_iter_1.pth'))


def _disk_full_while_writing(monkeypatch, when):
    """Make LocalBackend.put write a part of the file, then fail with
    ENOSPC, on the put calls for which ``when(path)`` is true."""
    put = LocalBackend.put

    def put_on_a_full_disk(self, obj, filepath):
        if when(str(filepath)):
            with open(filepath, 'wb') as f:
                f.write(obj[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put_on_a_full_disk)


def test_full_disk_stops_training_naming_the_checkpoint_kept(
        tmp_path, monkeypatch):
    _disk_full_while_writing(monkeypatch, lambda p: 'iter_3' in p)
    runner = _runner(tmp_path, max_iters=4, claim=False)
    with pytest.raises(CheckpointWriteError) as caught:
        runner.train()
    message = str(caught.value)
    print(message)
    kept = str(tmp_path / 'iter_2.pth')
    assert f'the checkpoint {tmp_path / "iter_3.pth"}: ' in message
    assert 'No space left on device' in message
    assert re.search(r'\d+ MiB free', message)
    assert f'the last intact checkpoint ({kept}) is kept' in message
    assert '--resume' in message
    assert isinstance(caught.value.__cause__, OSError)
    assert _last_checkpoint(tmp_path) == kept
    assert safe_torch_load(kept)['meta']['iter'] == 2
    assert not (tmp_path / 'iter_3.pth').exists()
    assert not glob.glob(str(tmp_path / '.*tmp*'))


def test_full_disk_at_the_first_checkpoint(tmp_path, monkeypatch):
    _disk_full_while_writing(monkeypatch, lambda p: 'iter_1' in p)
    runner = _runner(tmp_path, max_iters=2, claim=False)
    with pytest.raises(CheckpointWriteError,
                       match=f'No checkpoint was saved in {tmp_path} before; '
                       'nothing there was changed. Free space .or fix the '
                       'folder., then start the training again'):
        runner.train()
    assert not (tmp_path / 'last_checkpoint').exists()
    assert not glob.glob(str(tmp_path / '*.pth'))
    assert not glob.glob(str(tmp_path / '.*tmp*'))


def test_checkpoint_with_nonfinite_weights_is_refused(tmp_path):
    runner = _runner(tmp_path, max_iters=2, claim=False, guard=False)
    runner.train()
    with torch.no_grad():
        runner.model.linear.weight.fill_(float('nan'))
    with pytest.raises(RuntimeError, match='1 weight tensors hold NaN/inf '
                       r'\(e.g. linear.weight\)'):
        runner.save_checkpoint(str(tmp_path), 'after_nan.pth')
    assert not (tmp_path / 'after_nan.pth').exists()


# ------------------------------------------------------------- the claim --

def _write_claim(work_dir, pid, host=None):
    (work_dir / CLAIM_FILE).write_text(json.dumps(dict(
        host=host or socket.gethostname(), pid=pid,
        started='2026-01-01 00:00:00')))


def test_second_training_in_a_claimed_work_dir_stops_at_once(tmp_path):
    holder = os.getppid()  # alive, and not this process
    _write_claim(tmp_path, holder)
    runner = _runner(tmp_path, max_iters=2)
    with pytest.raises(WorkDirClaimedError,
                       match=f'PID {holder} on host {socket.gethostname()}'):
        runner.train()
    assert not glob.glob(str(tmp_path / 'iter_*.pth'))
    # the holder's claim is untouched
    assert json.loads((tmp_path / CLAIM_FILE).read_text())['pid'] == holder


def test_claim_of_another_host_is_respected(tmp_path):
    _write_claim(tmp_path, 1, host='elsewhere.example')
    with pytest.raises(WorkDirClaimedError, match='elsewhere.example'):
        claim_work_dir(str(tmp_path))


def test_claim_of_a_killed_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    _write_claim(tmp_path, dead.pid)
    warnings = []
    path = claim_work_dir(str(tmp_path), warn=warnings.append)
    assert json.loads(open(path).read())['pid'] == os.getpid()
    assert f'left by PID {dead.pid}' in warnings[0]
    assert 'no longer running' in warnings[0]
    release_work_dir(path)
    assert not os.path.exists(path)


def test_claim_is_held_during_training_and_released_after(tmp_path):
    seen = []

    class _Look(Hook):
        def after_train_iter(self, *args, **kwargs):
            seen.append((tmp_path / CLAIM_FILE).exists())

    runner = _runner(tmp_path, max_iters=2)
    runner.register_hook(_Look())
    runner.train()
    assert seen == [True, True]
    assert not (tmp_path / CLAIM_FILE).exists()


# ------------------------------------------------------------- non-finite --

def _weights(runner):
    return [p.detach().clone() for p in runner.model.parameters()]


def test_nonfinite_step_is_skipped_and_named(tmp_path):
    runner = _runner(tmp_path, max_iters=5, nan_at=(2, ), claim=False)
    runner.train()
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    log = _log_text(str(tmp_path))
    assert ('Skipped the optimizer step (iteration 3: non-finite loss_main, '
            'loss_aux)') in log
    for name in glob.glob(str(tmp_path / 'iter_*.pth')):
        state = safe_torch_load(name)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values())
    assert runner.message_hub.get_info('skipped_nonfinite_steps') == 1


def test_skipped_step_leaves_the_weights_as_they_were(tmp_path):
    """Iterations 1-3 with a NaN at 3 give the weights of iterations 1-2."""
    clean = _runner(tmp_path / 'a', max_iters=2, claim=False)
    clean.train()
    skipped = _runner(tmp_path / 'b', max_iters=3, nan_at=(2, ),
                      claim=False)
    skipped.train()
    for a, b in zip(_weights(clean), _weights(skipped)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('optim', [
    dict(optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=1.0)),
    dict(optimizer=dict(type='SGD', lr=0.1), accumulative_counts=2),
    dict(optimizer=dict(type='AdamW', lr=0.1), accumulative_counts=2,
         clip_grad=dict(max_norm=1.0)),
])
def test_guard_with_clipping_and_accumulation(optim, tmp_path):
    runner = _runner(tmp_path, max_iters=6, nan_at=(2, ), claim=False,
                     optim=optim, checkpoint=dict(interval=2))
    runner.train()
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert runner.message_hub.get_info('skipped_nonfinite_steps') == 1


def test_consecutive_nonfinite_steps_stop_training(tmp_path):
    runner = _runner(tmp_path, max_iters=8, nan_at=range(2, 8),
                     claim=False)
    with pytest.raises(NonFiniteLossError,
                       match='3 consecutive optimizer steps had a '
                       'non-finite loss or gradient'):
        runner.train()
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_nonfinite_gradient_with_finite_loss_is_skipped(tmp_path):
    runner = _runner(tmp_path, max_iters=2, claim=False)
    # a finite loss whose gradient is inf: d/dx sqrt(x) at 0
    runner.model.forward = lambda x, mode='loss': dict(
        loss=torch.sqrt(runner.model.linear.weight.abs() * 0).sum())
    before = _weights(runner)
    runner.train()
    for a, b in zip(before, _weights(runner)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert 'non-finite gradients' in _log_text(str(tmp_path))


# --------------------------------------------------------- shipped configs --

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py')))


def test_every_shipped_config_uses_the_safety_hooks():
    assert len(CONFIGS) == 81
    wrong = []
    for path in CONFIGS:
        hooks = Config.fromfile(path).default_hooks
        types = {k: v.get('type') for k, v in hooks.items()}
        if (types.get('checkpoint') != 'SafeCheckpointHook'
                or types.get('work_dir_claim') != 'WorkDirClaimHook'
                or types.get('nonfinite_guard') != 'NonFiniteGuardHook'):
            wrong.append(f'{os.path.basename(path)}: {types}')
    assert not wrong, '\n'.join(wrong)
    assert issubclass(SafeCheckpointHook,
                      __import__('mmengine').hooks.CheckpointHook)


def test_train_tool_adds_the_safety_hooks_to_any_config():
    from mmtinyvim.engine import add_safety_hooks
    cfg = Config(dict(default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', interval=3))))
    add_safety_hooks(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='SafeCheckpointHook',
                                                interval=3)
    assert cfg.default_hooks.work_dir_claim.type == 'WorkDirClaimHook'
    assert cfg.default_hooks.nonfinite_guard.type == 'NonFiniteGuardHook'
    source = open(os.path.join(ROOT, 'tools', 'train.py')).read()
    assert 'add_safety_hooks(cfg)' in source


def test_fp16_scaler_skips_are_kept_and_counted():
    """With a loss scaler (AmpOptimWrapper), overflowing gradients are left
    to the scaler (step() runs, it skips); the skip is counted and
    reported."""
    from mmtinyvim.engine import NonFiniteGuardOptimWrapper

    class _Scaler:
        scales = [65536.0, 32768.0]

        def get_scale(self):
            return self.scales.pop(0) if len(self.scales) > 1 else \
                self.scales[0]

    model = nn.Linear(2, 1)
    wrapper = NonFiniteGuardOptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1))
    wrapper.loss_scaler = _Scaler()
    steps = []
    wrapper.step = lambda **kwargs: steps.append(1)
    reports = wrapper.collect_reports()
    wrapper.initialize_count_status(model, 6, 10)  # iteration 7 comes next
    # a finite loss whose (scaled) gradients overflow
    model.weight.register_hook(lambda grad: grad * float('inf'))
    wrapper.update_params(model(torch.ones(1, 2)).sum())
    assert steps == [1]
    assert wrapper.skipped_by_scaler == 1 and wrapper.skipped_nonfinite == 0
    assert [r.message() for r in reports] == [
        'Iteration 7: fp16 loss scaler skipped the step (scaled gradients '
        'overflowed; scale 65536 -> 32768); 1 such steps skipped so far']


def test_testing_in_a_claimed_work_dir_does_not_claim(tmp_path):
    """tools/test.py (runner.test()) runs beside a training in its
    work_dir: only training claims."""
    _write_claim(tmp_path, os.getppid())
    _runner(tmp_path, val=True).val()  # before_run/after_run run
    trained = _runner(tmp_path / 'b', max_iters=1, val=True)
    trained.train()
    _write_claim(tmp_path / 'b', os.getppid())
    trained.val()  # validation after training in the same process
    assert json.loads((tmp_path / CLAIM_FILE).read_text())['pid'] == \
        os.getppid()


def test_partial_files_of_a_killed_save_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    partial = tmp_path / f'.iter_3.pth.tmp-{dead.pid}'
    partial.write_bytes(b'PK\x03\x04 half a checkpoint')
    alive = tmp_path / f'.iter_3.pth.tmp-{os.getppid()}'  # still writing
    alive.write_bytes(b'PK\x03\x04')
    _runner(tmp_path, max_iters=1, claim=False).train()
    assert not partial.exists() and alive.exists()
    assert f'Removed {partial}: a partial checkpoint of a killed run' in \
        _log_text(str(tmp_path))


@pytest.mark.parametrize('kind', ['file', 'directory'])
def test_resumed_best_path_outside_the_work_dir_is_never_deleted(
        kind, tmp_path):
    """A resumed checkpoint's hook state names the previous best; when it
    names a file outside this run's folder (or a directory), a new best
    leaves it as it is, with one warning."""
    _RisingScore.calls = 0
    work_dir = tmp_path / 'run'
    _runner(work_dir, max_iters=2, claim=False, val=True,
            checkpoint=dict(save_best='score', rule='greater')).train()
    outside = tmp_path / 'precious'
    if kind == 'file':
        outside.write_text('not yours')
    else:
        outside.mkdir()
        (outside / 'data.txt').write_text('not yours')
    last = _last_checkpoint(work_dir)
    checkpoint = safe_torch_load(last)
    checkpoint['message_hub']['runtime_info']['best_ckpt'] = str(outside)
    torch.save(checkpoint, last)
    resumed = _runner(work_dir, max_iters=4, resume=True, claim=False,
                      val=True, checkpoint=dict(save_best='score',
                                                rule='greater'))
    resumed.train()
    assert outside.exists()
    if kind == 'directory':
        assert (outside / 'data.txt').read_text() == 'not yours'
    log = _log_text(str(work_dir))
    assert log.count(f'Not removing {outside}') == 1
    # the run's own previous best (of iteration 3) is still rotated
    assert not (work_dir / 'best_score_iter_3.pth').exists()
    assert (work_dir / 'best_score_iter_4.pth').exists()


def test_misspelt_checkpoint_hook_argument_is_refused_at_construction():
    with pytest.raises(TypeError) as caught:
        SafeCheckpointHook(interval=1, max_keep_ckpt=2)
    message = str(caught.value)
    print(message)
    assert message.startswith(
        "SafeCheckpointHook: unknown argument(s) 'max_keep_ckpt' (did you "
        "mean 'max_keep_ckpts'")
    assert 'valid arguments: interval, by_epoch' in message


def test_resume_in_an_empty_work_dir_warns(tmp_path):
    _runner(tmp_path, max_iters=1, resume=True, claim=False).train()
    assert (f'WARNING - Resume: no checkpoint in {tmp_path}; training '
            'starts from scratch') in _log_text(str(tmp_path))


def test_resume_from_a_missing_checkpoint_is_refused(tmp_path):
    runner = _runner(tmp_path, max_iters=1, resume=True, claim=False)
    runner._load_from = str(tmp_path / 'iter_7.pth')  # --resume PATH
    with pytest.raises(FileNotFoundError,
                       match=f'--resume {tmp_path / "iter_7.pth"}: no such '
                       'checkpoint file'):
        runner.train()


def test_new_training_into_a_work_dir_with_checkpoints_is_refused(tmp_path):
    _runner(tmp_path, max_iters=2).train()
    before = (tmp_path / 'iter_2.pth').read_bytes()
    with pytest.raises(RuntimeError) as caught:
        _runner(tmp_path, max_iters=2, seed=1).train()  # no resume
    message = str(caught.value)
    print(message)
    assert message == (
        f'work_dir {tmp_path} holds checkpoints of an earlier run '
        '(iter_2.pth); a new training would overwrite them. Continue that '
        'run with --resume, train into another --work-dir, or move those '
        'files away first.')
    assert (tmp_path / 'iter_2.pth').read_bytes() == before
    assert not (tmp_path / CLAIM_FILE).exists()
    _runner(tmp_path, max_iters=3, resume=True).train()  # resuming is fine


# ------------------------------------- non-finite batches (issues 18, 20) --

class _Images(torch.utils.data.Dataset):
    """Float images (a float pipeline) with an ``img_path``; the images at
    ``bad`` get one inf (or NaN) pixel."""

    def __init__(self, bad=(), value=float('inf'), side=32):
        self.bad, self.value, self.side = set(bad), value, side

    def __len__(self):
        return 8

    def __getitem__(self, index):
        from mmpretrain.structures import DataSample
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(3, self.side, self.side,
                           generator=generator) * 255
        if index in self.bad:
            image[0, 3, 4] = self.value
        sample = DataSample(metainfo=dict(
            img_path=f'/data/img_{index}.tiff')).set_gt_label(index % 4)
        return dict(inputs=image, data_samples=sample)


def _classifier_runner(work_dir, bad=(), max_iters=4):
    """A TinyViM-S classifier (BatchNorm everywhere) on 32 px float
    images, a checkpoint every 2 iterations, as the shipped configs train."""
    return Runner(
        model=dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(type='TinyViM', arch='s'),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(type='mmpretrain.LinearClsHead', num_classes=4,
                      in_channels=224,
                      loss=dict(type='mmpretrain.CrossEntropyLoss')),
            data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor',
                                   mean=[128] * 3, std=[64] * 3)),
        work_dir=str(work_dir), experiment_name=f'cls_{next(_names)}',
        train_dataloader=dict(dataset=_Images(bad), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters,
                       val_interval=100),
        optim_wrapper=dict(type='NonFiniteGuardOptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type='SafeCheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1),
            nonfinite_guard=dict(type='NonFiniteGuardHook')))


def _nonfinite_buffers(model):
    return [name for name, buffer in model.named_buffers()
            if buffer.is_floating_point()
            and not bool(torch.isfinite(buffer).all())]


def test_one_inf_image_is_a_named_skip_not_a_traceback(tmp_path):
    """Issue 20: one inf pixel in one image of a batch (float pipeline)
    used to end training at the next checkpoint (NaN BatchNorm statistics
    refused) after the skip warning; now the step is skipped, the warning
    names the image, and training goes on with finite weights and
    buffers."""
    torch.manual_seed(0)
    runner = _classifier_runner(tmp_path, bad=(2, ))
    runner.train()
    assert runner.iter == 4
    assert not _nonfinite_buffers(runner.model)
    log = _log_text(str(tmp_path))
    assert ('Skipped the optimizer step (iteration 2: NaN/inf in the inputs '
            'of /data/img_2.tiff); the weights are unchanged.') in log
    assert runner.message_hub.get_info('skipped_nonfinite_steps') == 1
    state = safe_torch_load(str(tmp_path / 'iter_4.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


class _InputsToy(BaseModel):
    """A model on ``inputs`` that reads only their first feature (a NaN
    elsewhere never reaches its loss), with BatchNorm statistics."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.norm = nn.BatchNorm1d(1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs)[:, :1]
        if mode == 'loss':
            return dict(loss=self.norm(self.linear(x)).pow(2).mean())
        return [self.linear(x).sum().detach()]


class _Features(torch.utils.data.Dataset):
    """Samples of 2 features with an ``img_path``; those at ``bad`` hold
    ``value`` in their second feature (or, ``first=True``, the first)."""

    def __init__(self, bad=(), value=float('nan'), first=False):
        self.bad, self.value, self.first = set(bad), value, first

    def __len__(self):
        return 8

    def __getitem__(self, index):
        from mmengine.structures import BaseDataElement
        x = torch.tensor([index / 8, 1.0])
        if index in self.bad:
            x[0 if self.first else 1] = self.value
        return dict(inputs=x, data_samples=BaseDataElement(
            metainfo=dict(img_path=f'/data/{index}.npy')))


def _features_runner(work_dir, bad=(), value=float('nan'), first=False,
                     max_iters=4, optim_type='NonFiniteGuardOptimWrapper'):
    torch.manual_seed(0)  # the model is built here, not by the runner
    return Runner(
        model=_InputsToy(), work_dir=str(work_dir),
        experiment_name=f'features_{next(_names)}',
        train_dataloader=dict(dataset=_Features(bad, value, first),
                              batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(type=optim_type,
                           optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='SafeCheckpointHook', interval=1,
                            by_epoch=False, max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=1),
            nonfinite_guard=dict(type='NonFiniteGuardHook')))


def test_nonfinite_inputs_are_named_and_their_step_skipped(tmp_path):
    """Issue 20: NaN inputs whose loss stays finite used to be trained on
    without a word; now the warning names the images and the step (the
    weights) is skipped."""
    clean = _features_runner(tmp_path / 'a', max_iters=1)
    clean.train()
    runner = _features_runner(tmp_path / 'b', bad=(3, ), max_iters=2)
    runner.train()
    log = _log_text(str(tmp_path / 'b'))
    assert ('Skipped the optimizer step (iteration 2: NaN/inf in the inputs '
            'of /data/3.npy)') in log
    for a, b in zip(_weights(clean), _weights(runner)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_skipped_step_leaves_batchnorm_statistics_as_they_were(tmp_path):
    """A finite but huge input overflows BatchNorm's variance (inf running
    statistics) and the loss: the skip also puts the buffers back, so the
    next checkpoint is written (it used to be refused)."""
    runner = _features_runner(tmp_path, bad=(3, ), value=3e38, first=True)
    runner.train()
    assert runner.iter == 4
    assert not _nonfinite_buffers(runner.model)
    assert re.search(r'Skipped the optimizer step \(iteration 2: non-finite '
                     r'(loss|buffers .BatchNorm statistics. after the forward '
                     r'pass) in the batch of /data/2.npy, /data/3.npy\)',
                     _log_text(str(tmp_path)))
    assert (tmp_path / 'iter_4.pth').exists()


def test_guard_hook_refuses_an_unguarded_optimizer_wrapper(tmp_path):
    runner = _features_runner(tmp_path, optim_type='OptimWrapper')
    with pytest.raises(TypeError) as caught:
        runner.train()
    message = str(caught.value)
    print(message)
    assert message.startswith(
        'NonFiniteGuardHook: the optimizer wrapper is OptimWrapper, which '
        'takes the optimizer step also on a NaN/inf loss')
    assert "Set optim_wrapper.type='NonFiniteGuardOptimWrapper'" in message
    assert not glob.glob(str(tmp_path / 'iter_*.pth'))


def test_guard_changes_no_class_or_method_of_the_runner(tmp_path):
    """The guard is the configured wrapper class itself: no class swapped
    at run time, no method of the model replaced."""
    from mmtinyvim.engine import NonFiniteGuardOptimWrapper
    runner = _runner(tmp_path, max_iters=2, nan_at=(1, ), claim=False)
    runner.train()
    assert type(runner.optim_wrapper) is NonFiniteGuardOptimWrapper
    assert 'parse_losses' not in vars(runner.model)
    assert runner.message_hub.get_info('skipped_nonfinite_steps') == 1


def test_hook_argument_moved_to_the_wrapper_is_named():
    from mmtinyvim.engine import NonFiniteGuardHook
    with pytest.raises(TypeError, match='max_consecutive_skips is an '
                       'argument of the optimizer wrapper'):
        NonFiniteGuardHook(max_consecutive_skips=3)


def test_amp_flag_keeps_the_guard_and_amp_check_knows_subclasses(
        monkeypatch):
    """tools/train.py --amp turns a guarded wrapper into the guarded AMP
    one; the no-GPU check recognises AmpOptimWrapper subclasses."""
    from mmtinyvim.engine.optim_wrappers import (
        amp_optim_wrapper_type, float32_optim_wrapper_type,
        guarded_optim_wrapper_type)
    assert amp_optim_wrapper_type('NonFiniteGuardOptimWrapper') == \
        'NonFiniteGuardAmpOptimWrapper'
    assert amp_optim_wrapper_type('OptimWrapper') == 'AmpOptimWrapper'
    assert float32_optim_wrapper_type('NonFiniteGuardAmpOptimWrapper') == \
        'NonFiniteGuardOptimWrapper'
    assert guarded_optim_wrapper_type('AmpOptimWrapper') == \
        'NonFiniteGuardAmpOptimWrapper'
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    try:
        import train
    finally:
        sys.path.remove(os.path.join(ROOT, 'tools'))
    monkeypatch.setattr(train, 'has_amp_device', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(
        type='NonFiniteGuardAmpOptimWrapper', optimizer=dict(type='SGD'))))
    with pytest.raises(RuntimeError, match='optim_wrapper.type=Non'
                       'FiniteGuardOptimWrapper'):
        train.check_amp_device(cfg, 'x.py', by_flag=False)


def test_checkpoint_hook_uses_public_extension_points_only(tmp_path):
    """Issue 18: SafeCheckpointHook overrides no private method of
    mmengine's CheckpointHook (those differ between mmengine releases and
    forks); its atomic writes come from the registered file backend that
    its backend_args name."""
    from mmengine.hooks import CheckpointHook

    from mmtinyvim.engine.atomic_io import AtomicLocalBackend
    private = [name for name in vars(SafeCheckpointHook)
               if name.startswith('_') and not name.startswith('__')
               and hasattr(CheckpointHook, name)]
    assert private == []
    hook = SafeCheckpointHook(interval=1)
    assert hook.backend_args == dict(backend='atomic_local')
    runner = _runner(tmp_path, max_iters=1, claim=False)
    runner.train()
    checkpoint_hook = next(h for h in runner.hooks
                           if isinstance(h, SafeCheckpointHook))
    assert isinstance(checkpoint_hook.file_backend, AtomicLocalBackend)
    # a remote out_dir keeps mmengine's own choice of backend
    assert SafeCheckpointHook(
        interval=1, out_dir='s3://bucket/run').backend_args is None
