"""The package as a user gets it: the wheel, installed into a fresh venv,
used from another directory (configs by name, the installed tools, mim);
and the config-path API and the stack check in-process."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

import mmtinyvim
from mmtinyvim import config_path, stack

REPO = Path(__file__).resolve().parents[1]
NAME = 'maskrcnn_tinyvim_s_coco'
# one iteration on 2 generated 64 px images, no validation
TINY = ['model.backbone.init_cfg=None', 'train_dataloader.batch_size=2',
        'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
        'train_dataloader.dataset.pipeline.2.scale=(64,64)',
        'test_dataloader.dataset.pipeline.2.scale=(64,64)'] + [
            f'{split}_dataloader.{key}' for split in ('train', 'test')
            for key in ('num_workers=0', 'persistent_workers=False')]


def test_get_config_path_by_name():
    path = mmtinyvim.get_config_path(NAME)
    assert path == mmtinyvim.get_config_path(NAME + '.py')
    assert osp.isabs(path) and osp.isfile(path)
    assert osp.samefile(path, REPO / 'configs' / f'{NAME}.py')
    assert osp.isfile(mmtinyvim.get_config_path(
        '_base_/default_runtime_det.py'))


def test_get_config_path_wrong_name_lists_close_matches():
    with pytest.raises(FileNotFoundError, match='maskrcnn_tinyvim_s_coco'):
        mmtinyvim.get_config_path('maskrcnn_tinyvim_s_cocoo')
    with pytest.raises(FileNotFoundError, match='did you mean'):
        mmtinyvim.get_config_path('tinyvim_s')  # a substring
    with pytest.raises(ValueError):
        mmtinyvim.get_config_path('../setup.py')


def test_list_configs_matches_the_clone_and_the_metafile():
    names = mmtinyvim.list_configs()
    assert names == sorted(p.stem for p in (REPO / 'configs').glob('*.py'))
    assert mmtinyvim.list_configs('tinyvim_s_') == [
        n for n in names if 'tinyvim_s_' in n]
    with open(REPO / 'metafile.yml') as f:
        models = yaml.safe_load(f)['Models']
    for model in models:  # every model-index entry points at a shipped one
        assert model['Config'].startswith('configs/'), model['Config']
        assert Path(model['Config']).stem in names, model['Config']


def test_missing_stack_is_one_message(monkeypatch):
    real = stack.importlib.util.find_spec
    monkeypatch.setattr(
        stack.importlib.util, 'find_spec',
        lambda name, *a: None if name == 'mmcv' else real(name, *a))
    with pytest.raises(ImportError, match=r"mmtinyvim\[onedl\]") as err:
        stack.check_stack()
    assert 'mmtinyvim[openmmlab]' in str(err.value)
    assert stack.stack_name() in ('openmmlab', 'onedl')


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{cmd} failed:\n{out[-4000:]}'
    return out


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """Build the wheel from a copy of the sources (so that the clone's own
    .mim links stay as they are), install it into a fresh venv that sees
    this environment's packages (torch, mmcv, the toolboxes, openmim) but
    not its mmtinyvim, and return (python, env, run dir)."""
    tmp = tmp_path_factory.mktemp('pkg')
    src = tmp / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md', 'MANIFEST.in', 'metafile.yml',
                 'model-index-mmpretrain.yml'):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__', '.mim', '*.pyc')
    for name in ('mmtinyvim', 'configs', 'tools'):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '-w', str(tmp / 'dist'), str(src)],
         tmp, dict(os.environ))
    wheel, = (tmp / 'dist').glob('mmtinyvim-*.whl')
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    mim = 'mmtinyvim/.mim/'
    for name in ('model-index.yml', 'metafile.yml',
                 'model-index-mmpretrain.yml', 'tools/train.py',
                 'tools/test.py', f'configs/{NAME}.py',
                 'configs/_base_/default_runtime_det.py'):
        assert mim + name in files, name
    shipped = {f for f in files if f.startswith(mim + 'configs/')}
    assert len(shipped) == len(list((REPO / 'configs').rglob('*.py')))

    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         "['purelib'])"], capture_output=True, text=True,
        check=True).stdout.strip()
    # this environment's site-packages as a plain path entry, after the new
    # venv's own: its .pth files (the editable mmtinyvim) are not run
    parents = dict.fromkeys(sysconfig.get_paths()[k]
                            for k in ('purelib', 'platlib'))
    Path(site, '_test_env.pth').write_text('\n'.join(parents) + '\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(PYTHONNOUSERSITE='1', PATH=f'{venv}/bin:{env["PATH"]}')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install',
          '--no-deps', '--no-index', str(wheel)], tmp, env)
    run = tmp / 'elsewhere'
    run.mkdir()
    return python, env, run, Path(site)


def test_wheel_installed_elsewhere_trains_tests_and_searches(installed):
    python, env, run, site = installed
    out = _run([python, '-c', 'import mmtinyvim as m; print(m.__file__); '
                f'print(m.get_config_path({NAME!r}))'], run, env)
    module_file, cfg = out.strip().splitlines()[-2:]
    assert Path(module_file).parent == site / 'mmtinyvim', module_file
    assert cfg == str(site / 'mmtinyvim' / '.mim' / 'configs' / f'{NAME}.py')

    _run([python, '-m', 'mmtinyvim.datasets.make_demo_data', '--task', 'coco',
          '--out-root', 'data', '--num-train', '2', '--num-val', '1',
          '--image-side', '64'], run, env)
    # a user config that inherits the shipped one by name
    (run / 'my_cfg.py').write_text(
        "_base_ = [__import__('mmtinyvim').get_config_path("
        f"'{NAME}')]\nmodel = dict(backbone=dict(init_cfg=None))\n")
    out = _run([python, '-m', 'mim', 'train', 'mmtinyvim', 'my_cfg.py',
                '--work-dir', 'work', '--cfg-options'] + TINY, run, env)
    assert 'Epoch(train) [1][1/1]' in out, out[-3000:]
    assert str(site / 'mmtinyvim' / '.mim' / 'tools' / 'train.py') in out
    ckpt = run / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()

    # the shipped config found by mim by name, the installed test tool
    out = _run([python, '-m', 'mim', 'test', 'mmtinyvim', f'{NAME}.py',
                '--checkpoint', str(ckpt), '--work-dir', 'work_test',
                '--cfg-options'] + TINY, run, env)
    assert 'Epoch(test) [1/1]' in out, out[-3000:]
    assert str(site / 'mmtinyvim' / '.mim' / 'configs') in out

    out = _run([python, '-m', 'mim', 'search', 'mmtinyvim'], run, env)
    with open(REPO / 'metafile.yml') as f:
        models = yaml.safe_load(f)['Models']
    assert out.count('config id:') == len(models)
    assert f'config id: {NAME}' in out

    # mmpretrain's names resolve to the installed configs; mim's download
    # stops with the metafile's line, or finds the file named there in --dest
    out = _run([python, '-c', 'import mmtinyvim; from mmpretrain.apis '
                "import ModelHub; print('config:', ModelHub.get("
                "'tinyvim_s_in1k').config.filename)"], run, env)
    assert 'config: ' + str(site / 'mmtinyvim' / '.mim' / 'configs' /
                            'tinyvim_s_in1k.py') + '\n' in out, out[-3000:]
    weights = next(m['Weights'] for m in models if m['Name'] == NAME)
    proc = subprocess.run([python, '-m', 'mim', 'download', 'mmtinyvim',
                           '--config', NAME, '--dest', 'ckpt'], cwd=run,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and weights in proc.stderr, proc.stderr[-3000:]
    (run / 'ckpt' / weights.rsplit('/', 1)[-1]).write_bytes(b'')
    out = _run([python, '-m', 'mim', 'download', 'mmtinyvim', '--config',
                NAME, '--dest', 'ckpt'], run, env)
    assert (run / 'ckpt' / f'{NAME}.py').is_file(), out[-3000:]
