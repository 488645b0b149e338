"""Training robustness on real configs with tiny generated data: bf16 autocast
stays finite (scan and wavelet in float32), a run killed with SIGKILL resumes
with the losses of an uninterrupted run, and deterministic mode repeats
itself."""
import json
import os
import signal
import subprocess
import sys
import time
from glob import glob

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmtinyvim  # noqa: F401
from mmtinyvim.datasets.make_demo_data import make_demo_data
from mmtinyvim.engine.amp import (amp_config, summarize,
                                             train_under_autocast)
from mmtinyvim.utils.checkpoint import safe_loading_in_mmengine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_EVALUATION = '''
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
'''
SCAN_MODULE = sys.modules['mmtinyvim.ops.scan']
# where the Haar transforms compute (the public functions then cast to the
# caller's dtype; the fused CUDA kernels compute in float32 in registers)
WAVELET_MODULE = sys.modules['mmtinyvim.models.wavelet']

# MobileMamba-T2 Mask R-CNN (Haar wavelets and scans) at 64 px, with fewer
# sampled anchors and RoIs; evaluation switched off.
DETECTION = '''
_base_ = '{root}/configs/maskrcnn_mobilemamba_t2_coco.py'
model = dict(
    backbone=dict(init_cfg=None),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=200, max_per_img=64),
                   rcnn=dict(sampler=dict(num=16))))
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{data}/coco/', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(64, 64), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')]))
''' + NO_EVALUATION
# A Semantic FPN config on 64 x 64 crops, evaluation switched off.
SEGMENTATION = '''
_base_ = '{root}/configs/{config}'
crop_size = (64, 64)
model = dict(backbone=dict(init_cfg=None),
             data_preprocessor=dict(size=crop_size))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{data}/ade/ADEChallengeData2016', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(128, 64), ratio_range=(0.5, 2.0),
             keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs')]))
''' + NO_EVALUATION
# Resume runs: 10 iterations, a checkpoint every 5, lr decaying linearly
# (the scheduler state matters), per-iteration loss logging, seed 0 in
# deterministic mode.
RESUMABLE = '''
max_iters = 10
param_scheduler = [dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0,
                        end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
custom_hooks = [dict(type='ResumableRandomnessHook')]
'''


@pytest.fixture(autouse=True)
def _keep_default_scope():
    """Runners make their scope ('mmdet', 'mmseg', 'mmengine') the default
    one; other tests build models in theirs."""
    scopes = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    """Derived config files on freshly generated demo data: ``det``
    (MobileMamba-T2 Mask R-CNN), ``seg`` (TinyViM-S Semantic FPN) and
    ``resume`` (MobileMamba-T2 Semantic FPN, with drop path)."""
    base = tmp_path_factory.mktemp('robustness')
    data = base / 'data'
    make_demo_data('coco', data, num_train=5, num_val=1, image_side=96)
    make_demo_data('ade', data, num_train=4, num_val=1, image_side=96)
    texts = {
        'det': DETECTION,
        'seg': SEGMENTATION.replace('{config}', 'fpn_tinyvim_s_ade20k.py'),
        'resume': SEGMENTATION.replace(
            '{config}', 'fpn_mobilemamba_t2_ade20k.py') + RESUMABLE,
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = base / f'{name}.py'
        paths[name].write_text(text.format(root=ROOT, data=data))
    return paths


class _Float32Probe:
    """Records, during training, the dtypes the selective scan computes in
    and the dtype of every Haar transform's output."""

    def __init__(self, monkeypatch):
        self.scan, self.wavelet = [], []
        table = SCAN_MODULE.BACKEND_TABLE
        for name, row in list(table.items()):
            monkeypatch.setitem(table, name,
                                row._replace(impl=self._scan(row.impl)))
        for name in ('_haar_analysis', '_haar_synthesis'):
            monkeypatch.setattr(WAVELET_MODULE, name,
                                self._wavelet(getattr(WAVELET_MODULE, name)))

    def _scan(self, impl):
        def recorded(u, *args):
            autocast_on = torch.is_autocast_enabled('cpu')
            result = impl(u, *args)
            self.scan.append((autocast_on, result.dtype))
            return result
        return recorded

    def _wavelet(self, transform):
        def recorded(*args, **kwargs):
            result = transform(*args, **kwargs)
            self.wavelet.append(result.dtype)
            return result
        return recorded


@pytest.fixture
def one_thread():
    """At 64 px an iteration is thousands of tiny ops (and the optimizer's
    per-tensor ones): a second intra-op thread only adds synchronisation.
    Measured for 5 Mask R-CNN iterations on the 2-core CI machine: 48.5 s
    with 2 threads, 10.9 s with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_bf16_autocast_50_iterations_stay_finite(task, configs, tmp_path,
                                                 monkeypatch, one_thread):
    probe = _Float32Probe(monkeypatch)
    cfg = Config.fromfile(str(configs[task]))
    cfg.work_dir, cfg.log_level = str(tmp_path), 'WARNING'
    runner = Runner.from_cfg(amp_config(cfg, 'bfloat16', 'cpu'))
    records = train_under_autocast(runner, 50, 'bfloat16', log=lambda _: None)
    passed, verdict = summarize(records, max_skipped_steps=0)
    print(f'\n{task} bf16: {verdict}; losses {records[0].loss:.3f} -> '
          f'{records[-1].loss:.3f}; scan calls {len(probe.scan)}, wavelet '
          f'calls {len(probe.wavelet)}')
    assert passed, '\n'.join(str(r) for r in records if not r.finite)
    assert probe.scan and set(probe.scan) == {(False, torch.float32)}
    if task == 'det':  # MobileMamba: Haar transforms in float32
        assert probe.wavelet and set(probe.wavelet) == {torch.float32}


class _Points(torch.utils.data.Dataset):
    """x = index + uniform noise drawn at load time (augmentation)."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(x=torch.full((2, ), float(index)) + torch.rand(2))


class _DropoutModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x, mode='loss'):
        return dict(loss=self.linear(self.dropout(x)).pow(2).mean())


class _LossRecorder(Hook):

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(outputs['loss'].item())


def _toy_losses(work_dir, max_iters, resume, with_hook):
    torch.manual_seed(0)  # the model is built here, not by the runner
    recorder = _LossRecorder()
    runner = Runner(
        model=_DropoutModel(), work_dir=str(work_dir),
        experiment_name=f'toy_{max_iters}_{resume}_{with_hook}',
        train_dataloader=dict(dataset=_Points(), batch_size=2,
                              sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4,
                                           by_epoch=False)),
        randomness=dict(seed=0, deterministic=True), resume=resume,
        custom_hooks=[recorder] + (
            [dict(type='ResumableRandomnessHook')] if with_hook else []),
        log_level='WARNING')
    runner.train()
    return recorder.losses


@pytest.mark.parametrize('with_hook', [False, True])
def test_resume_needs_the_randomness_hook(with_hook, tmp_path):
    """Without the hook, resuming draws other augmentation and dropout
    numbers than the uninterrupted run; with it, the same ones."""
    uninterrupted = _toy_losses(tmp_path / 'a', 8, False, with_hook)
    first_half = _toy_losses(tmp_path / 'b', 4, False, with_hook)
    # mmengine's resume reads the runner checkpoint (message hub, numpy
    # RNG state) under torch's weights_only default: through the safe
    # loader, as the shipped configs' SafeLoadingHook arranges
    with safe_loading_in_mmengine():
        second_half = _toy_losses(tmp_path / 'b', 8, True, with_hook)
    assert first_half == uninterrupted[:4]
    assert (second_half == uninterrupted[4:]) == with_hook


def _train_command(config, work_dir, *extra):
    return [sys.executable, os.path.join(ROOT, 'tools', 'train.py'),
            str(config), '--work-dir', str(work_dir), *extra]


def _subprocess_env():
    # one intra-op thread, as in one_thread
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    return env


def _logged_losses(work_dir):
    """iteration -> loss of every run logged in ``work_dir``, per run."""
    runs = []
    for path in sorted(glob(os.path.join(work_dir, '*', 'vis_data',
                                         'scalars.json'))):
        with open(path) as f:
            runs.append({entry['iter']: entry['loss']
                         for entry in map(json.loads, f)
                         if 'loss' in entry})
    return runs


@pytest.fixture(scope='module')
def segmentation_runs(configs, tmp_path_factory):
    """Losses per iteration of three tools/train.py runs of the ``resume``
    config (seed 0, deterministic mode): an uninterrupted reference, a run
    killed with SIGKILL once its first checkpoint (iteration 5) exists, and
    that run resumed with --resume."""
    env = _subprocess_env()
    base = tmp_path_factory.mktemp('segmentation_runs')
    reference_dir, killed_dir = base / 'reference', base / 'killed'
    reference_run = subprocess.run(
        _train_command(configs['resume'], reference_dir), env=env,
        capture_output=True, text=True)
    assert reference_run.returncode == 0, reference_run.stderr[-3000:]
    reference, = _logged_losses(reference_dir)

    process = subprocess.Popen(_train_command(configs['resume'], killed_dir),
                               env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    pointer = killed_dir / 'last_checkpoint'
    while not pointer.exists() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    exit_code = process.wait()
    killed, = _logged_losses(killed_dir)

    resumed_run = subprocess.run(
        _train_command(configs['resume'], killed_dir, '--resume'), env=env,
        capture_output=True, text=True)
    assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]
    resumed = _logged_losses(killed_dir)[-1]
    return dict(reference=reference, killed=killed, resumed=resumed,
                exit_code=exit_code,
                log=resumed_run.stdout + resumed_run.stderr)


def test_sigkill_then_resume_repeats_the_uninterrupted_losses(
        segmentation_runs):
    runs = segmentation_runs
    reference, killed, resumed = (runs['reference'], runs['killed'],
                                  runs['resumed'])
    assert runs['exit_code'] == -signal.SIGKILL, 'finished before the kill'
    assert 5 <= max(killed) < 10
    # the checkpoint (message hub, numpy values) was read weights_only
    assert 'resumed epoch: 0, iter: 5' in runs['log']
    print(f'\nuninterrupted {[round(reference[i], 6) for i in range(1, 11)]}'
          f'\nkilled after iteration {max(killed)}, resumed '
          f'{[round(resumed[i], 6) for i in sorted(resumed)]}')
    assert sorted(reference) == list(range(1, 11))
    assert sorted(resumed) == list(range(6, 11))
    assert all(resumed[i] == reference[i] for i in resumed)


def test_deterministic_mode_repeats_the_first_five_losses(segmentation_runs):
    """The reference and the (later killed) run: same seed, same config."""
    first = [segmentation_runs['reference'][i] for i in range(1, 6)]
    second = [segmentation_runs['killed'][i] for i in range(1, 6)]
    print(f'\nfirst five losses: {first}\n                   {second}')
    assert first == second
