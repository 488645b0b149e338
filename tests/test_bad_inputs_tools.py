"""Bad input to the tools is one clear message before anything runs, and no
tool output destroys an input: the image demo's --out-file, --cfg-options
keys and arguments nothing reads, --cfg-options without '=', a work_dir
that is a file, dist_train.sh / dist_test.sh with a missing file."""
import ast
import glob
import os
import subprocess
import sys

import mmcv
import numpy as np
import pytest

from mmtinyvim.engine.config_check import (ConfigCheckError, check_work_dir,
                                           load_config)
from tests.modules import REPO, load_file

CLS_CONFIG = str(REPO / 'configs/tinyvim_s_in1k.py')
DET_CONFIG = str(REPO / 'configs/maskrcnn_tinyvim_s_coco.py')
sys.path.insert(0, str(REPO / 'tools'))  # tools/test.py imports train.py
train = load_file('tools/train.py', 'mmtinyvim_train_tool')
test_tool = load_file('tools/test.py', 'mmtinyvim_test_tool')
image_demo = load_file('tools/demo/image_demo.py')


# ------------------------------------------------ the image demo's output --

@pytest.mark.parametrize('through_link', [False, True])
def test_image_demo_refuses_the_input_image_as_output(tmp_path, capsys,
                                                      through_link):
    image = tmp_path / 'photo.jpg'
    mmcv.imwrite(np.full((40, 50, 3), 77, np.uint8), str(image))
    before = image.read_bytes()
    out = image
    if through_link:
        out = tmp_path / 'link.jpg'
        out.symlink_to(image)
    with pytest.raises(SystemExit) as exit_:
        image_demo.main([str(image), CLS_CONFIG, '--random-weights',
                         '--out-file', str(out)])
    link = ' (through a link)' if through_link else ''
    assert exit_.value.code == (
        f'error: --out-file {out} is the input image {image}{link}: writing '
        'the picture there would destroy the input image. Give --out-file '
        'another path.')
    assert image.read_bytes() == before


def test_image_demo_refuses_the_checkpoint_as_output(tmp_path):
    image = tmp_path / 'photo.jpg'
    mmcv.imwrite(np.zeros((40, 50, 3), np.uint8), str(image))
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    with pytest.raises(SystemExit, match='is the checkpoint'):
        image_demo.main([str(image), CLS_CONFIG, str(checkpoint),
                         '--out-file', str(checkpoint)])
    assert checkpoint.read_bytes() == b'weights'


def test_picture_replaces_an_existing_file_whole_or_not_at_all(
        tmp_path, monkeypatch):
    out = tmp_path / 'picture.png'
    out.write_bytes(b'old picture')
    visual = np.full((8, 12, 3), 200, np.uint8)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(image_demo.os, 'replace', interrupted)
    with pytest.raises(KeyboardInterrupt):
        image_demo.write_picture(visual, str(out))
    assert out.read_bytes() == b'old picture'
    assert sorted(os.listdir(tmp_path)) == ['picture.png']  # no temporary
    monkeypatch.undo()
    image_demo.write_picture(visual, str(out))
    assert mmcv.imread(str(out)).shape == (8, 12, 3)
    assert sorted(os.listdir(tmp_path)) == ['picture.png']
    with pytest.raises(ValueError, match=r'cannot write a \.txt image'):
        image_demo.write_picture(visual, str(tmp_path / 'picture.txt'))


def _edits_sys_path(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr == 'path'
                and isinstance(node.value, ast.Name)
                and node.value.id == 'sys'):
            return True
    return False


def test_the_demos_import_the_package_not_sys_path():
    """Issue 18's layout rule: tools import the installed package; a sibling
    script is run by path (runpy), not reached by editing sys.path."""
    demos = sorted((REPO / 'tools' / 'demo').glob('*.py'))
    assert demos
    assert [p.name for p in demos if _edits_sys_path(p)] == []


def test_train_demo_loads_without_tools_on_sys_path():
    code = ('from tests.modules import load_file; '
            "m = load_file('tools/demo/train_demo.py'); "
            'print(m.paint.__name__, m.write_picture.__name__)')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                            capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['paint', 'write_picture']


# ---------------------------------------------------------- --cfg-options --

def test_misspelt_top_level_key_is_refused_with_the_close_names(capsys):
    with pytest.raises(ConfigCheckError) as err:
        train.main([CLS_CONFIG, '--cfg-options',
                    'optim_wraper.optimizer.lr=0.1'])
    message = str(err.value)
    print(f'\n{message}')
    assert message.startswith(
        f"--cfg-options optim_wraper.optimizer.lr: 'optim_wraper' is not a "
        f'top-level key of {CLS_CONFIG} nor one the runner reads, so the '
        "value would be added and never used. Did you mean 'optim_wrapper'? "
        'Valid top-level keys: ')
    assert 'train_dataloader' in message and 'model_wrapper_cfg' in message
    with pytest.raises(SystemExit) as exit_:
        train.run([CLS_CONFIG, '--cfg-options', 'optim_wraper.type=X'])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith(
        "Error: --cfg-options optim_wraper.type: 'optim_wraper' is not")


@pytest.mark.parametrize('option,expected', [
    ('default_hooks.checkpoint.intervall=2',
     "default_hooks.checkpoint: SafeCheckpointHook has no argument "
     "'intervall'. Did you mean 'interval'? SafeCheckpointHook takes: "
     'backend_args, by_epoch, '),
    ('optim_wrapper.optimizer.lrr=0.1',
     "optim_wrapper.optimizer: AdamW has no argument 'lrr'. Did you mean "
     "'lr'? AdamW takes: amsgrad, betas, "),
    ('optim_wrapper.clip_gard.max_norm=1',
     "optim_wrapper: AmpOptimWrapper has no argument 'clip_gard'. Did you "
     "mean 'clip_grad'? "),
    ('custom_hooks.4.momentun=0.1',  # the EMAHook
     "custom_hooks.4: EMAHook has no argument 'momentun'. Did you mean "
     "'momentum'? EMAHook takes: begin_epoch, begin_iter, device, "),
    ('default_hooks.logger.type=LogerHook',
     "default_hooks.logger: type 'LogerHook' is not a registered hook "
     "(default_scope 'mmpretrain'). Did you mean 'LoggerHook'"),
])
def test_misspelt_component_argument_is_refused_before_training(option,
                                                                expected):
    """Before: a misspelt CheckpointHook argument failed at the first save,
    with a TypeError in Runner.save_checkpoint."""
    with pytest.raises(ConfigCheckError) as err:
        train.main([CLS_CONFIG, '--cfg-options', option])
    print(f'\n{err.value}')
    assert str(err.value).startswith(expected)


def test_the_same_check_runs_in_the_test_tool(tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ConfigCheckError, match="Did you mean 'test_cfg'"):
        test_tool.main([CLS_CONFIG, str(checkpoint), '--cfg-options',
                        'test_cgf.fp16=True'])


def test_valid_overrides_and_every_shipped_config_pass():
    cfg = load_config(DET_CONFIG, {
        'optim_wrapper.optimizer.lr': 1e-3, 'work_dir': 'w',
        'default_hooks.checkpoint.max_keep_ckpts': 2,
        'model_wrapper_cfg.find_unused_parameters': True,
        'randomness.seed': 0, 'train_dataloader.batch_size': 1})
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    failed = {}
    for path in sorted(glob.glob(str(REPO / 'configs' / '*.py'))):
        try:
            load_config(path)
        except ConfigCheckError as err:
            failed[path] = str(err)
    assert failed == {}


@pytest.mark.parametrize('tool,argv', [
    (train, [CLS_CONFIG]), (test_tool, [CLS_CONFIG, 'model.pth'])])
def test_cfg_options_without_equals_is_one_usage_error(tool, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        tool.parse_args(argv + ['--cfg-options', 'train_cfg.max_epochs=2',
                                'train_cfg.max_epochs'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: ')
    assert err.splitlines()[-1].endswith(
        "error: --cfg-options: 'train_cfg.max_epochs' is not a KEY=VALUE "
        'pair. Write each override as KEY=VALUE, e.g. --cfg-options '
        'train_dataloader.batch_size=2 "model.backbone.arch=\'b\'"; quote a '
        'value with spaces (a list such as "param_scheduler.1.milestones=[8, '
        '11]") so that the shell keeps it one argument.')


# ------------------------------------------- data preprocessor mean / std --

@pytest.mark.parametrize('config,option,value,expected', [
    (DET_CONFIG, 'model.data_preprocessor.std', '[58.395,0,57.375]',
     'model.data_preprocessor.std=[58.395, 0, 57.375]: entry 1 (0) is not '
     'a finite number > 0. The data preprocessor divides each channel by its '
     'std: a zero std makes the channel inf or NaN (all NaN for a constant '
     'image), a non-finite one NaN, a negative one inverts it, and training '
     'would run on NaN or on inverted images. Give a finite number > 0 per '
     'image channel, in pixel units (ImageNet statistics of 0-255 images: '
     'std=[58.395, 57.12, 57.375]), or leave out both mean and std to feed '
     'the pixels unnormalised.'),
    # the classifier configs' top-level data_preprocessor, which mmengine
    # gives to a model without one
    (CLS_CONFIG, 'data_preprocessor.std', '[1,-2.5,inf]',
     'data_preprocessor.std=[1, -2.5, inf]: entries 1 (-2.5), 2 (inf) are '
     'not finite numbers > 0. '),
    (DET_CONFIG, 'model.data_preprocessor.mean', '[nan,1,1]',
     'model.data_preprocessor.mean=[nan, 1, 1]: entry 0 (nan) is not a '
     "finite number. The data preprocessor subtracts each channel's mean: "
     'a non-finite one makes the channel NaN or inf, and training would run '
     'on NaN. Give a finite number per image channel'),
])
def test_normalisation_that_makes_inputs_nonfinite_is_refused(
        config, option, value, expected, tmp_path):
    """Before: trained (and evaluated) on inf / NaN inputs without a word."""
    with pytest.raises(ConfigCheckError) as err:
        train.main([config, '--work-dir', str(tmp_path / 'wd'),
                    '--cfg-options', f'{option}={value}'])
    print(f'\n{err.value}')
    assert str(err.value).startswith(expected)
    assert not (tmp_path / 'wd').exists()
    with pytest.raises(ConfigCheckError, match='is not a finite number|are '
                       'not finite numbers'):
        load_config(config, {option: train.parse_args(
            [config, '--cfg-options', f'{option}={value}']).cfg_options[
                option]})


# ---------------------------------------------------------------- work_dir --

def test_work_dir_that_is_a_file_is_one_clear_error(tmp_path):
    taken = tmp_path / 'results.txt'
    taken.write_text('keep me')
    with pytest.raises(ConfigCheckError) as err:
        train.main([CLS_CONFIG, '--work-dir', str(taken)])
    assert str(err.value) == (
        f'work_dir {taken} is a file, not a directory: the run writes its '
        'logs and checkpoints there. Give --work-dir a directory (it is '
        'created if absent), or move the file away.')
    with pytest.raises(ConfigCheckError,
                       match=f'is inside {taken}, which is a file'):
        check_work_dir(str(taken / 'run1'))
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ConfigCheckError, match='is a file, not a directory'):
        test_tool.main([CLS_CONFIG, str(checkpoint), '--work-dir',
                        str(taken)])
    assert taken.read_text() == 'keep me'
    check_work_dir(str(tmp_path / 'new' / 'run'))  # absent: fine


# ------------------------------------------------------- dist_*.sh checks --

@pytest.mark.parametrize('script,args,message', [
    ('dist_train.sh', ['missing.py', '2'],
     'error: config file not found: missing.py (give the path of a config '
     'file, e.g. configs/maskrcnn_tinyvim_s_coco.py)'),
    ('dist_train.sh', [CLS_CONFIG, 'two'],
     "error: GPUS must be a whole number of processes >= 1, got 'two'"),
    ('dist_test.sh', ['missing.py', 'model.pth', '2'],
     'error: config file not found: missing.py'),
    ('dist_test.sh', [CLS_CONFIG, 'missing.pth', '2'],
     'error: checkpoint file not found: missing.pth'),
])
def test_dist_scripts_check_their_files_before_spawning(script, args,
                                                        message, tmp_path):
    # a PYTHON that cannot start: reaching torchrun would exit 127
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / script), *args], cwd=tmp_path,
        capture_output=True, text=True,
        env={**os.environ, 'PYTHON': str(tmp_path / 'no-python')})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message)


# ------------------------------- mmengine's loaders after an in-process run --

@pytest.fixture
def sentinel_loaders():
    """Every scheme of mmengine's CheckpointLoader set to a stand-in of its
    own: a tool that opts mmengine into the safe loader and does not put
    the loaders back leaves mmtinyvim's in their place."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmtinyvim.utils.checkpoint import restore_mmengine_loaders
    previous = dict(CheckpointLoader._schemes)

    def stand_in(prefix):
        def load(filename, map_location=None):
            raise AssertionError(f'stand-in loader of {prefix!r} called')
        return load

    sentinels = {prefix: stand_in(prefix) for prefix in previous}
    restore_mmengine_loaders(sentinels)
    yield sentinels
    restore_mmengine_loaders(previous)


def _schemes():
    from mmengine.runner.checkpoint import CheckpointLoader
    return dict(CheckpointLoader._schemes)


def test_train_tool_puts_mmengine_loaders_back(sentinel_loaders, tmp_path):
    """The run gets as far as building the runner (the safe loaders are
    installed), then fails on the missing data."""
    with pytest.raises(FileNotFoundError, match='COCO annotation file'):
        train.main([DET_CONFIG, '--work-dir', str(tmp_path / 'wd'),
                    '--cfg-options', 'model.backbone.init_cfg=None',
                    f'train_dataloader.dataset.data_root={tmp_path}/coco/'])
    assert _schemes() == sentinel_loaders


def test_test_tool_puts_mmengine_loaders_back(sentinel_loaders, tmp_path):
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmtinyvim.utils.checkpoint import NonFiniteWeightsError
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        state = MODELS.build(cfg.model).state_dict()
    next(iter(state.values())).view(-1)[0] = float('nan')
    checkpoint = tmp_path / 'nan.pth'
    torch.save({'state_dict': state}, checkpoint)
    # refused after the runner is built, before any data is read
    with pytest.raises(NonFiniteWeightsError):
        test_tool.main([CLS_CONFIG, str(checkpoint), '--work-dir',
                        str(tmp_path / 'w'), '--cfg-options',
                        'model.backbone.init_cfg=None'])
    assert _schemes() == sentinel_loaders


def test_image_demo_puts_mmengine_loaders_back(sentinel_loaders, tmp_path):
    image = tmp_path / 'photo.jpg'
    mmcv.imwrite(np.full((40, 50, 3), 90, np.uint8), str(image))
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        visual, _ = image_demo.paint(str(image), CLS_CONFIG)
    assert visual.shape[:2] == (40, 50)
    assert _schemes() == sentinel_loaders
