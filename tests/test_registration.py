"""custom_imports=['mmtinyvim'] makes the modules buildable from all three
toolboxes, from any working directory."""
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import torch
    from mmengine.config import Config
    cfg = Config(dict(custom_imports=dict(imports=['mmtinyvim'],
                                          allow_failed_imports=False)))
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(**cfg.custom_imports)
    from {toolbox}.registry import MODELS
    from {toolbox}.utils import register_all_modules
    register_all_modules()
    for cfg in [dict(type='TinyViM', arch='s'),
                dict(type='MobileMamba', arch='t2')]:
        model = MODELS.build(cfg).eval()
        feats = model(torch.randn(1, 3, 64, 64))
        print(type(model).__name__, [tuple(f.shape) for f in feats])
''')


@pytest.mark.parametrize('toolbox', ['mmdet', 'mmseg', 'mmpretrain'])
def test_buildable_from_each_toolbox(toolbox, tmp_path):
    result = subprocess.run([sys.executable, '-c',
                             SCRIPT.format(toolbox=toolbox)],
                            cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith('TinyViM [(1, 48, 16, 16)')
    assert lines[-1].startswith('MobileMamba [')


def test_ssdlite_head_registered_by_the_package_import(tmp_path):
    """SSDLiteHead is a head (mmtinyvim.models.heads) and ``import
    mmtinyvim`` alone makes it buildable in mmdet's scope."""
    script = textwrap.dedent('''
        import mmtinyvim
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules()
        head = MODELS.build(dict(
            type='SSDLiteHead', in_channels=(8, 16), num_classes=3,
            anchor_generator=dict(
                type='SSDAnchorGenerator', scale_major=False,
                strides=[16, 32], ratios=[[2, 3], [2, 3]],
                min_sizes=[48, 100], max_sizes=[100, 150]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[0.1, 0.1, 0.2, 0.2])))
        print(type(head).__module__, head.loss_cls)
    ''')
    result = subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ['mmtinyvim.models.heads.ssdlite_head',
                                     'None']


def test_configs_import_the_package_not_its_submodules():
    """``import mmtinyvim`` registers every model; configs import only the
    package and the dataset module of their toolbox."""
    from pathlib import Path

    from mmengine.config import Config
    configs = sorted(
        (Path(__file__).resolve().parents[1] / 'configs').glob('*.py'))
    allowed = {'mmtinyvim', 'mmtinyvim.datasets.coco',
               'mmtinyvim.datasets.ade', 'mmtinyvim.datasets.imagenet'}
    for config in configs:
        cfg = Config.fromfile(str(config), import_custom_modules=False)
        imports = set(cfg.custom_imports.imports)
        assert 'mmtinyvim' in imports and imports <= allowed, (
            config.name, sorted(imports - allowed))


# A runner checkpoint (message hub: HistoryBuffer objects holding numpy
# arrays) written by mmengine itself, in a process that never imports
# mmtinyvim.
SAVE_RUNNER_CHECKPOINT = textwrap.dedent('''
    import sys
    import torch
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(inputs)
            return {'loss': out.pow(2).mean()} if mode == 'loss' else out

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(inputs=torch.full((2, ), float(i)))

    runner = Runner(
        model=Toy(), work_dir=sys.argv[1],
        train_dataloader=dict(
            dataset=Data(), batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False)))
    runner.train()
    torch.save(runner.model.state_dict(), sys.argv[1] + '/weights.pth')
''')

LOAD_WITH_MMENGINE = textwrap.dedent('''
    import sys
    import torch
    {import_line}
    from mmengine.runner import load_checkpoint
    model = torch.nn.Module()
    model.linear = torch.nn.Linear(2, 1)
    checkpoint = load_checkpoint(model, sys.argv[1] + '/iter_2.pth')
    saved = torch.load(sys.argv[1] + '/weights.pth')
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    print(type(history).__name__)
''')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    result = subprocess.run(
        [sys.executable, '-c', SAVE_RUNNER_CHECKPOINT, str(work_dir)],
        cwd=work_dir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work_dir / 'iter_2.pth').is_file()
    return work_dir


def _load_in_fresh_process(work_dir, import_line):
    script = LOAD_WITH_MMENGINE.format(import_line=import_line)
    return subprocess.run([sys.executable, '-c', script, str(work_dir)],
                          cwd=work_dir, capture_output=True, text=True,
                          timeout=300)


def test_the_opt_in_lets_mmengine_load_runner_checkpoints(
        runner_checkpoint):
    result = _load_in_fresh_process(
        runner_checkpoint, 'import mmtinyvim; '
        'mmtinyvim.utils.use_safe_loader_in_mmengine()')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == 'HistoryBuffer'


def test_without_mmtinyvim_torch_refuses_the_runner_checkpoint(
        runner_checkpoint):
    """What the opt-in fixes: under torch's weights_only=True default,
    mmengine's own loader cannot read its own checkpoints (importing the
    package alone changes nothing)."""
    result = _load_in_fresh_process(runner_checkpoint, 'import mmtinyvim')
    assert result.returncode != 0
    assert 'weights_only' in result.stderr, result.stderr[-3000:]


def test_safe_loader_is_scoped_and_idempotent(runner_checkpoint):
    """The allow-list applies to mmengine's loader only, for one load:
    plain torch.load keeps torch's own allow-list, and an object outside
    mmtinyvim's list is still refused. Installing the loader twice changes
    nothing."""
    script = textwrap.dedent('''
        import pathlib, sys
        import torch
        import mmtinyvim
        from mmengine.runner.checkpoint import CheckpointLoader
        from mmtinyvim.utils import checkpoint as safe
        original = dict(CheckpointLoader._schemes)
        safe.use_safe_loader_in_mmengine()
        before = dict(CheckpointLoader._schemes)
        assert safe.use_safe_loader_in_mmengine() == before
        assert dict(CheckpointLoader._schemes) == before
        assert CheckpointLoader._get_checkpoint_loader('x.pth') is \\
            safe.load_from_local
        work_dir = pathlib.Path(sys.argv[1])
        try:
            torch.load(work_dir / 'iter_2.pth')
        except Exception as err:
            print('torch.load refused:', 'weights_only' in str(err))
        torch.save({'path': pathlib.PurePosixPath('/x')},
                   work_dir / 'other.pth')
        from mmengine.runner import CheckpointLoader as Loader
        try:
            Loader.load_checkpoint(str(work_dir / 'other.pth'))
        except RuntimeError as err:
            print('mmengine refused:', 'PurePosixPath' in str(err))
        safe.restore_mmengine_loaders(original)
        assert dict(CheckpointLoader._schemes) == original
    ''')
    result = subprocess.run(
        [sys.executable, '-c', script, str(runner_checkpoint)],
        cwd=runner_checkpoint, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = [line for line in result.stdout.splitlines()
                if ' refused: ' in line]
    assert verdicts == ['torch.load refused: True', 'mmengine refused: True']
