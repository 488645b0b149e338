"""Logs a user can read: no warning that is not actionable in a normal run."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_pkg_resources_deprecation_is_silenced_inside_a_run_only():
    # mmengine imports pkg_resources lazily (pkg:: configs, mim); setuptools
    # then warns, which the user cannot act on. Our tools run inside
    # quiet_run(); the package's import changes no filter.
    code = ('import warnings; warnings.simplefilter("default"); '
            'import mmtinyvim; filters = list(warnings.filters); '
            'from mmtinyvim.engine import quiet_run\n'
            'with quiet_run():\n'
            '    import pkg_resources\n'
            '    warnings.warn("still shown", UserWarning)\n'
            'assert warnings.filters == filters')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'pkg_resources is deprecated' not in result.stderr
    assert 'still shown' in result.stderr  # other warnings are not filtered


# --- a short training + validation run of each task, under ``-W always`` --

# What may still appear, each (category or 'log', source, message start) with
# why it is not ours to silence. Anything else fails the test.
ALLOWED = (
    # mmcv's module-move notice, raised on import; ImportWarning is ignored
    # under Python's default filters, so a normal run never shows it
    ('ImportWarning', 'mmcv/cnn/bricks/transformer.py',
     '``MultiScaleDeformableAttention`` has been moved'),
    # pycocotools 2.0 under numpy 2 (COCO masks); DeprecationWarning from a
    # library is ignored under Python's default filters
    ('DeprecationWarning', 'pycocotools/mask.py',
     "__array__ implementation doesn't accept a copy keyword"),
    # torch, only on a machine without a GPU (this test's): the configs'
    # pin_memory=True is right for the GPU training they are written for
    ('UserWarning', 'torch/utils/data/dataloader.py',
     "'pin_memory' argument is set as true but no accelerator is found"),
)

WARNING_LINE = re.compile(r'^(\S+?):\d+: (\w+Warning): (.*)$')
LOG_LINE = re.compile(r' - \S+ - (?:WARNING|ERROR) - (.*)$')


def emitted_warnings(output):
    """(category or 'log', file or logger line, message) of each warning
    printed by ``python -W always`` or logged at WARNING/ERROR."""
    found = []
    for line in output.splitlines():
        match = WARNING_LINE.match(line)
        if match:
            found.append((match[2], match[1], match[3]))
            continue
        match = LOG_LINE.search(line)
        if match:
            found.append(('log', '', match[1]))
    return found


def unexpected(found):
    return [w for w in found if not any(
        w[0] == category and w[1].endswith(source) and
        w[2].startswith(message) for category, source, message in ALLOWED)]


def test_unexpected_and_allowed_warnings_are_told_apart():
    output = (
        '/x/mmcv/cnn/bricks/transformer.py:24: ImportWarning: '
        '``MultiScaleDeformableAttention`` has been moved to ...\n'
        '/x/mmseg/models/builder.py:36: UserWarning: ``build_loss`` would be '
        'deprecated soon\n'
        '11/30 15:13:13 - mmengine - WARNING - The prefix is not set in '
        'metric class IoUMetric.\n'
        '11/30 15:13:13 - mmengine - INFO - Checkpoints will be saved\n')
    assert unexpected(emitted_warnings(output)) == [
        ('UserWarning', '/x/mmseg/models/builder.py',
         '``build_loss`` would be deprecated soon'),
        ('log', '', 'The prefix is not set in metric class IoUMetric.')]


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    from mmtinyvim.datasets.make_demo_data import make_demo_data
    out = tmp_path_factory.mktemp('quiet_data')
    make_demo_data('coco', out, num_train=2, num_val=1, image_side=64)
    make_demo_data('ade', out, num_train=2, num_val=1, image_side=64)
    make_demo_data('imagenet', out, num_train=2, num_val=1, image_side=64)
    return out


def task_options(task, data):
    from tests.test_tools import det_options, loader_options
    if task == 'det':
        return det_options(data / 'coco')
    if task == 'seg':
        root = data / 'ade' / 'ADEChallengeData2016'
        return [
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.pipeline.2.scale=(128,64)',
            'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
            'val_dataloader.dataset.pipeline.2.scale=(128,64)',
            'model.data_preprocessor.size=(64,64)',
            'model.backbone.init_cfg=None', 'train_dataloader.batch_size=2',
            'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2',
        ] + loader_options('train', 'val', 'test')
    return [  # cls; float32 on CPU (the config trains with AMP on GPUs)
        f'train_dataloader.dataset.data_root={data}/imagenet',
        f'val_dataloader.dataset.data_root={data}/imagenet',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=1',
        'train_cfg.max_epochs=1', 'model.backbone.init_cfg=None',
        'optim_wrapper.type=NonFiniteGuardOptimWrapper',
    ] + loader_options('train', 'val')


@pytest.mark.parametrize('task, config', [
    ('det', 'configs/maskrcnn_tinyvim_s_coco.py'),
    ('seg', 'configs/fpn_mobilemamba_t2_ade20k.py'),
    ('seg', 'configs/deeplabv3_tinyvim_s_ade20k.py'),
    ('cls', 'configs/mobilemamba_t2_in1k.py'),
])
def test_short_training_and_validation_emit_no_unexpected_warning(
        task, config, demo_data, tmp_path):
    work_dir = tmp_path / 'wd'
    result = subprocess.run(
        [sys.executable, '-W', 'always', 'tools/train.py', config,
         '--work-dir', str(work_dir), '--cfg-options',
         *task_options(task, demo_data)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert any(work_dir.glob('*.pth'))  # trained, validated, saved
    assert unexpected(emitted_warnings(output)) == []
