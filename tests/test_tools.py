"""The user tools, run as a user runs them: dist_train.sh with two CPU
processes (gloo), test.py and the image demo on its checkpoint, mmdet's and
mmseg's own tools and Inferencers on our configs, the Slurm launchers, the
checkpoint converters, and the bad-input errors."""
import os
import pickle
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import mmcv
import mmdet
import mmseg
import numpy as np
import pytest
import torch

from mmtinyvim.datasets.make_demo_data import make_demo_data
from mmtinyvim.utils.checkpoint import safe_loading_in_mmengine
from tests.golden import load_golden, plain_network, weights_for

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
DET_CONFIG = 'configs/maskrcnn_tinyvim_s_coco.py'
SEG_CONFIG = 'configs/fpn_mobilemamba_t2_ade20k.py'
SIDE = 64


def run(args, check=True, env=None, timeout=600):
    """Run a command in the repo with the test interpreter first on PATH."""
    full_env = dict(os.environ, PYTHON=sys.executable,
                    PATH=f'{Path(sys.executable).parent}:{os.environ["PATH"]}')
    full_env.update(env or {})
    result = subprocess.run(args, cwd=REPO, env=full_env, timeout=timeout,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f'{args} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n'
                             f'{result.stderr[-5000:]}')
    return result


def loader_options(*loaders):
    options = []
    for loader in loaders:
        options += [f'{loader}_dataloader.num_workers=0',
                    f'{loader}_dataloader.persistent_workers=False']
    return options


def det_options(coco_root):
    """--cfg-options that make the Mask R-CNN config a tiny CPU run."""
    root = f'{coco_root}/'
    ann = f'{root}annotations/instances_val2017.json'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        f'train_dataloader.dataset.pipeline.2.scale=({SIDE},{SIDE})',
        f'val_dataloader.dataset.pipeline.2.scale=({SIDE},{SIDE})',
        f'test_dataloader.dataset.pipeline.2.scale=({SIDE},{SIDE})',
        'train_dataloader.batch_size=2', 'train_dataloader.batch_sampler=None',
        'model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
        'model.test_cfg.rcnn.score_thr=0.0',
        'model.test_cfg.rcnn.max_per_img=10',
        'model.train_cfg.rpn_proposal.max_per_img=100',
        'model.train_cfg.rcnn.sampler.num=32',
        'model.test_cfg.rpn.max_per_img=100',
        'default_hooks.logger.interval=1', 'randomness.seed=0',
    ] + loader_options('train', 'val', 'test')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp('data')
    make_demo_data('coco', out, num_train=4, num_val=2, image_side=SIDE)
    make_demo_data('ade', out, num_train=2, num_val=1, image_side=SIDE)
    return out


@pytest.fixture(scope='module')
def dist_run(data, tmp_path_factory):
    """tools/dist_train.sh with 2 processes on CPU (gloo), one epoch."""
    work_dir = tmp_path_factory.mktemp('dist')
    result = run(['bash', 'tools/dist_train.sh', DET_CONFIG, '2',
                  '--work-dir', str(work_dir), '--cfg-options',
                  *det_options(data / 'coco')],
                 env={'PORT': '29613', 'OMP_NUM_THREADS': '1'})
    return work_dir, result.stdout + result.stderr


@pytest.fixture
def safe_loader():
    """mmengine's loaders under the safe loader for one test, as the
    configs' SafeLoadingHook does for a run; put back afterwards."""
    with safe_loading_in_mmengine():
        yield


def test_dist_train_two_cpu_processes(dist_run):
    work_dir, output = dist_run
    assert output.count('No CUDA device: distributed backend nccl -> '
                        'gloo') == 2
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log
    assert (work_dir / 'epoch_1.pth').is_file()


def test_test_tool_dumps_and_draws(dist_run, data, tmp_path):
    work_dir, _ = dist_run
    out = tmp_path / 'results.pkl'
    result = run([sys.executable, 'tools/test.py', DET_CONFIG,
                  str(work_dir / 'epoch_1.pth'), '--work-dir', str(tmp_path),
                  '--out', str(out), '--show-dir', 'painted',
                  '--cfg-options', *det_options(data / 'coco')])
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2
    assert 'pred_instances' in predictions[0]
    assert len(list(tmp_path.glob('*/painted/*.jpg'))) == 2


def test_image_demo_draws_predictions(dist_run, data, tmp_path):
    work_dir, _ = dist_run
    image = next((data / 'coco' / 'val2017').glob('*.jpg'))
    out_file = tmp_path / 'painted.jpg'
    run([sys.executable, 'tools/demo/image_demo.py', str(image), DET_CONFIG,
         str(work_dir / 'epoch_1.pth'), '--out-file', str(out_file),
         '--score-thr', '0'])
    painted, original = mmcv.imread(str(out_file)), mmcv.imread(str(image))
    assert painted.shape == original.shape
    assert (painted.astype(int) - original).any()


def test_mmdet_inferencer_takes_our_config(dist_run, data, safe_loader):
    from mmdet.apis import DetInferencer
    work_dir, _ = dist_run
    inferencer = DetInferencer(model=str(REPO / DET_CONFIG),
                               weights=str(work_dir / 'epoch_1.pth'),
                               device='cpu', show_progress=False)
    image = str(next((data / 'coco' / 'val2017').glob('*.jpg')))
    plain = inferencer(image, no_save_vis=True)['predictions'][0]
    # the one explicit fast path (for_inference's docstring example): the
    # folded backbone takes the plain one's place, same detections
    from mmtinyvim.engine import for_inference
    inferencer.model.backbone = for_inference(
        inferencer.model.backbone, torch.zeros(1, 3, 64, 64),
        compile=False, cuda_graph=False)
    result = inferencer(image, return_vis=True, no_save_vis=True)
    assert inferencer.model.backbone.network.deploy
    assert result['visualization'][0].shape[2] == 3
    assert set(result['predictions'][0]) >= {'labels', 'scores', 'bboxes',
                                            'masks'}
    fast = result['predictions'][0]
    assert len(fast['scores']) == len(plain['scores'])
    assert np.allclose(sorted(fast['scores'])[-5:],
                       sorted(plain['scores'])[-5:], atol=1e-3)


def test_mmdet_own_train_tool_takes_our_config(data, tmp_path):
    mmdet_train = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'train.py'
    result = run([sys.executable, str(mmdet_train), DET_CONFIG,
                  '--work-dir', str(tmp_path), '--cfg-options',
                  *det_options(data / 'coco')])
    assert 'coco/segm_mAP' in result.stdout + result.stderr


def test_mmseg_own_train_tool_and_inferencer_take_our_config(
        safe_loader, data, tmp_path):
    mmseg_train = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    root = data / 'ade' / 'ADEChallengeData2016'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.2.scale=(128,64)',
        'model.data_preprocessor.size=(64,64)', 'model.backbone.init_cfg=None',
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=1',
        'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1'
    ] + loader_options('train', 'val', 'test')
    result = run([sys.executable, str(mmseg_train), SEG_CONFIG,
                  '--work-dir', str(tmp_path), '--cfg-options', *options])
    assert 'mIoU' in result.stdout + result.stderr

    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=str(REPO / SEG_CONFIG),
                                 weights=str(tmp_path / 'iter_1.pth'),
                                 device='cpu')
    image = str(next((root / 'images' / 'validation').glob('*.jpg')))
    result = inferencer(image, return_vis=True)
    label = result['predictions']
    assert label.shape == result['visualization'].shape[:2]
    assert label.max() < 150


def test_launchers_refuse_missing_arguments():
    for script, needed in (('dist_train.sh', 'CONFIG GPUS'),
                           ('dist_test.sh', 'CONFIG CHECKPOINT GPUS'),
                           ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG'),
                           ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG')):
        result = run(['bash', f'tools/{script}', DET_CONFIG], check=False)
        assert result.returncode == 2
        assert f'usage: tools/{script} {needed}' in result.stderr


def test_slurm_launchers_call_srun(tmp_path):
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    record = tmp_path / 'srun_args'
    (fake_bin / 'srun').write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    (fake_bin / 'srun').chmod(0o755)
    env = {'PATH': f'{fake_bin}:{os.environ["PATH"]}', 'GPUS': '16'}
    run(['bash', 'tools/slurm_train.sh', 'gpu', 'job', DET_CONFIG, 'wd',
         '--amp'], env=env)
    args = record.read_text().split('\n')
    assert args[:2] == ['-p', 'gpu'] and '--ntasks=16' in args
    assert '--ntasks-per-node=8' in args and '--gres=gpu:8' in args
    assert args[args.index(str(TOOLS / 'train.py')) + 1:-1] == [
        DET_CONFIG, '--work-dir=wd', '--launcher=slurm', '--amp']
    run(['bash', 'tools/slurm_test.sh', 'gpu', 'job', DET_CONFIG, 'ck.pth'],
        env=env)
    args = record.read_text().split('\n')
    assert args[args.index(str(TOOLS / 'test.py')) + 1:-1] == [
        DET_CONFIG, 'ck.pth', '--launcher=slurm']


def _train_main():
    sys.path.insert(0, str(TOOLS))
    import train
    return train.main


def test_train_tool_missing_data_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        _train_main()([DET_CONFIG, '--work-dir', str(tmp_path / 'wd'),
                       '--cfg-options', 'model.backbone.init_cfg=None',
                       f'train_dataloader.dataset.data_root={tmp_path}/coco/'])
    message = str(err.value)
    assert message.startswith('COCO annotation file not found: '
                              f'{tmp_path}/coco/annotations/'
                              'instances_train2017.json')
    assert ('python -m mmtinyvim.datasets.make_demo_data --task coco '
            f'--out-root {tmp_path}') in message


def test_unknown_variant_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError,
                       match="Unknown TinyViM arch 'xl'; valid: s, b, l"):
        _train_main()([DET_CONFIG, '--work-dir', str(tmp_path),
                       '--cfg-options', 'model.backbone.arch=xl'])


def test_train_tool_refuses_a_config_of_another_toolbox(tmp_path):
    config = tmp_path / 'other.py'
    config.write_text("default_scope = 'mmocr'\n")
    with pytest.raises(ValueError) as err:
        _train_main()([str(config)])
    assert str(err.value) == (
        f"{config}: default_scope='mmocr'; this tool runs configs of mmdet, "
        'mmseg, mmpretrain (detection, segmentation, classification)')


# ------------------------------------------------------------ converters --

def _official(family, golden):
    """A fabricated official checkpoint: raw and EMA weights in the
    training dict the family's scripts save."""
    weights = weights_for(golden)
    ema = {k: v + 1 if v.is_floating_point() else v
           for k, v in weights.items()}
    if family == 'tinyvim':
        return weights, dict(model=weights, model_ema=ema, epoch=299,
                             args=Namespace(model='TinyViM_S'))
    return weights, dict(net=weights, net_E=ema, epoch=299)


@pytest.mark.parametrize('family,golden_name,config', [
    ('tinyvim', 'tinyvim_S', 'configs/tinyvim_s_in1k.py'),
    ('mobilemamba', 'mobilemamba_T2', 'configs/mobilemamba_t2_in1k.py'),
])
def test_converters_round_trip(family, golden_name, config, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import mmtinyvim_to_official
    import official_to_mmtinyvim

    weights, official = _official(family, load_golden(golden_name))
    src = tmp_path / 'official.pth'
    torch.save(official, src)

    # official -> mmpretrain classifier, loaded strictly into the config's
    # ImageClassifier
    classifier = official_to_mmtinyvim.convert(
        str(src), str(tmp_path / 'cls.pth'), family)['state_dict']
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(str(REPO / config)).model)
    model.load_state_dict(classifier, strict=True)
    saved = torch.load(tmp_path / 'cls.pth', weights_only=True)
    assert saved['meta']['family'] == family
    # drawn and evaluated with ImageNet's class names, not another dataset's
    classes = saved['meta']['dataset_meta']['classes']
    assert len(classes) == 1000 and classes[0] == 'tench, Tinca tinca'

    # and back: exactly the official keys and tensors
    back = mmtinyvim_to_official.convert(
        str(tmp_path / 'cls.pth'), str(tmp_path / 'back.pth'), family)
    assert list(back) == list(weights)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    reloaded = torch.load(tmp_path / 'back.pth', weights_only=True)
    assert set(reloaded) == ({'model'} if family == 'tinyvim' else
                             set(weights))

    # --ema takes the EMA weights
    classifier_ema = official_to_mmtinyvim.convert(
        str(src), str(tmp_path / 'cls_ema.pth'), family,
        ema=True)['state_dict']
    key = next(k for k in classifier_ema if k.startswith('backbone.') and
               classifier_ema[k].is_floating_point())
    assert torch.equal(classifier_ema[key], classifier[key] + 1)

    # backbone-only weights load through init_cfg into the dense backbone
    official_to_mmtinyvim.convert(str(src), str(tmp_path / 'bb.pth'),
                                  family, to='backbone')
    backbone = MODELS.build(dict(
        type='TinyViM' if family == 'tinyvim' else 'MobileMamba',
        arch=golden_name.split('_')[1].lower(),
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'bb.pth'))))
    backbone.init_weights()
    own = backbone.state_dict()
    shared = [k for k in own if k in weights]
    assert len(shared) >= len(own) - 20  # all but TinyViM's output norms
    assert all(torch.equal(own[k], weights[k]) for k in shared)


def test_converter_cli_errors(tmp_path, capsys):
    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import official_to_mmtinyvim
    _, official = _official('mobilemamba', load_golden('mobilemamba_T2'))
    src = tmp_path / 'mm.pth'
    torch.save(official, src)
    with pytest.raises(SystemExit) as err:
        official_to_mmtinyvim.main([str(src), str(tmp_path / 'out.pth'),
                                    '--family', 'tinyvim'])
    assert str(err.value).startswith(
        f'error: {src} is a MobileMamba checkpoint (keys blocks1.')
    assert 'pass --family mobilemamba' in str(err.value)
    assert not (tmp_path / 'out.pth').exists()
    with pytest.raises(SystemExit, match='error: Checkpoint file not found'):
        official_to_mmtinyvim.main([str(tmp_path / 'missing.pth'),
                                    str(tmp_path / 'out.pth'), '--family',
                                    'mobilemamba'])
    official_to_mmtinyvim.main([str(src), str(tmp_path / 'out.pth'),
                                '--family', 'mobilemamba', '--ema'])
    assert capsys.readouterr().out.startswith('wrote ')


# ------------------------------------------------ strict test, AMP on CPU --

MM_DET_CONFIG = 'configs/maskrcnn_mobilemamba_t2_coco.py'


def _detector_checkpoint(config, path):
    """A randomly initialised detector of ``config``, saved the way mmengine
    saves it."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(REPO / config))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def _test_tool(checkpoint, coco_root, work_dir, extra=()):
    return run([sys.executable, 'tools/test.py', DET_CONFIG, str(checkpoint),
                '--work-dir', str(work_dir), *extra, '--cfg-options',
                *det_options(coco_root)], check=False)


def test_test_tool_refuses_a_checkpoint_of_another_model(data, tmp_path):
    """A MobileMamba detector's checkpoint for the TinyViM config: one error
    naming the keys and a non-zero exit, not the unloaded model's mAP."""
    checkpoint = _detector_checkpoint(MM_DET_CONFIG, tmp_path / 'mm_t2.pth')
    result = _test_tool(checkpoint, data / 'coco', tmp_path)
    error = result.stderr.strip().splitlines()[-1]
    print(f'\n{error}')
    assert result.returncode != 0
    assert error.startswith(f"RuntimeError: Checkpoint '{checkpoint}' does "
                            'not fit MaskRCNN: ')
    assert 'missing keys: backbone.network.0.0.layer_scale, ' in error
    assert 'unexpected keys: backbone.patch_embed.4.c.weight, ' in error
    assert 'shape mismatches: backbone.patch_embed.0.c.weight: ' in error
    assert error.endswith('Nothing was loaded.')
    assert 'coco/bbox_mAP' not in result.stdout + result.stderr


@pytest.mark.parametrize('extra', [[], ['--no-deploy'], ['--deploy']])
def test_test_tool_evaluates_a_checkpoint_of_the_model(data, tmp_path,
                                                       extra):
    checkpoint = _detector_checkpoint(DET_CONFIG, tmp_path / 'tv_s.pth')
    result = _test_tool(checkpoint, data / 'coco', tmp_path, extra)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'coco/bbox_mAP' in log
    # a folded network is evaluated unless --no-deploy: the config's
    # DeployHook's copy by default, the model itself with --deploy
    assert ('DeployHook: validation and testing run a folded copy' in log
            ) == (extra == [])
    assert ('evaluated as trained' in log) == (extra == ['--no-deploy'])
    assert ('DeployHook: folded' in log) == (extra == ['--deploy'])


def test_deploy_hook_folds_after_loading_and_keeps_the_outputs():
    from types import SimpleNamespace

    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    from mmtinyvim.engine import DeployHook
    cfg = Config.fromfile(str(REPO / DET_CONFIG))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = plain_network(MODELS.build(cfg.model).eval())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        before = detector.extract_feat(x)
    runner = SimpleNamespace(model=torch.nn.DataParallel(detector),
                             logger=MMLogger.get_current_instance())
    DeployHook(in_place=True).before_test(runner)
    assert detector.backbone.deploy
    with torch.no_grad():
        after = detector.extract_feat(x)
    error = max(float((a - b).abs().max() / b.std())
                for a, b in zip(after, before))
    print(f'\nDeployHook: Mask R-CNN TinyViM-S features max|d|/std '
          f'{error:.2e}')
    assert error < 1e-4
    with pytest.raises(RuntimeError, match='DeployHook: Linear has no '
                       'module with switch_to_deploy'):
        DeployHook(in_place=True).before_test(
            SimpleNamespace(model=torch.nn.Linear(2, 2)))
    # with EMA, whose weights are swapped into the unfolded model around
    # testing, folding in place is refused (the in1k configs have EMA)
    from mmengine.hooks import EMAHook
    with pytest.raises(RuntimeError, match='EMAHook swaps its averaged '
                       'weights'):
        DeployHook(in_place=True).before_test(SimpleNamespace(
            model=detector, hooks=[EMAHook()]))


@pytest.fixture
def no_accelerator(monkeypatch):
    """The device queries mmengine answers, all saying 'none here'."""
    import mmengine.device
    for name in ('is_cuda_available', 'is_npu_available', 'is_mlu_available',
                 'is_musa_available'):
        monkeypatch.setattr(mmengine.device, name, lambda: False)


def test_train_tool_amp_without_gpu_is_one_clear_error(no_accelerator,
                                                       tmp_path):
    with pytest.raises(RuntimeError) as err:
        _train_main()([DET_CONFIG, '--amp', '--work-dir', str(tmp_path)])
    print(f'\n{err.value}')
    message = str(err.value)
    assert message.startswith('--amp: mixed-precision training needs a CUDA '
                              'GPU')
    assert 'On CPU, train in float32: leave out --amp.' in message
    assert ('tools/analysis_tools/amp_check.py CONFIG --dtype bfloat16 '
            '--device cpu') in message
    assert not (tmp_path / 'wd').exists()


def test_train_tool_cuda_graph_adds_one_hook(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    train = sys.modules[_train_main().__module__]
    cfg = train.load_config(DET_CONFIG)
    shapes = [h for h in cfg.custom_hooks  # the config's own hook
              if h['type'] == 'CUDAGraphTrainingHook'][0]['batch_shapes']
    train.add_cuda_graph_hook(cfg, compile=True)
    graph_hooks = [h for h in cfg.custom_hooks
                   if h['type'] == 'CUDAGraphTrainingHook']
    # one hook, required now, keeping the config's options
    assert graph_hooks == [dict(type='CUDAGraphTrainingHook', compile=True,
                                required=True, max_graphs=6,
                                batch_shapes=shapes)]
    cfg.custom_hooks = []
    cfg.pop('model_wrapper_cfg')
    train.add_cuda_graph_hook(cfg)
    assert cfg.custom_hooks == [dict(type='CUDAGraphTrainingHook',
                                     compile=False, required=True)]
    assert 'model_wrapper_cfg' not in cfg  # one GPU: no wrapper
    # under a launcher the DDP wrapper is the graph-safe one, keeping the
    # options mmengine's default wrapper would have had
    cfg.launcher = 'pytorch'
    cfg.find_unused_parameters = True
    train.add_cuda_graph_hook(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='GraphSafeDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True)
    cfg.model_wrapper_cfg = dict(type='MMFullyShardedDataParallel')
    with pytest.raises(RuntimeError, match="wraps the model in GraphSafe"
                       "DistributedDataParallel; the config asks for "
                       "model_wrapper_cfg type 'MMFullyShardedDataParallel'"):
        train.add_cuda_graph_hook(cfg)


def test_every_config_graphs_by_default_and_no_cuda_graph_opts_out():
    train = sys.modules[_train_main().__module__]
    from mmtinyvim import list_configs
    from mmtinyvim.engine import CUDAGraphTrainingHook
    names = list_configs()
    assert len(names) == 81
    for name in names:
        cfg = train.load_config(f'configs/{name}.py')
        graph_hooks = [h for h in cfg.custom_hooks
                       if h['type'] == 'CUDAGraphTrainingHook']
        assert len(graph_hooks) == 1 and \
            graph_hooks[0]['required'] is False, name
        options = {k: v for k, v in graph_hooks[0].items() if k != 'type'}
        CUDAGraphTrainingHook(**options)  # valid options
        if cfg.default_scope == 'mmdet':  # batches of varying size
            assert len(options['batch_shapes']) == 4, name
        assert cfg.model_wrapper_cfg.type == \
            'GraphSafeDistributedDataParallel', name
    train.remove_cuda_graph_hook(cfg)
    assert not [h for h in cfg.custom_hooks
                if h['type'] == 'CUDAGraphTrainingHook']
    assert [h['type'] for h in cfg.custom_hooks][0] == \
        'ResumableRandomnessHook'


def test_train_tool_cuda_graph_without_gpu_is_one_clear_error(
        monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='--cuda-graph records CUDA graphs '
                       'and this machine has no CUDA GPU; train without '
                       '--cuda-graph'):
        _train_main()([DET_CONFIG, '--cuda-graph', '--work-dir',
                       str(tmp_path / 'wd')])
    assert not (tmp_path / 'wd').exists()


def test_config_with_amp_without_gpu_says_how_to_train_in_fp32(
        no_accelerator, tmp_path):
    sys.path.insert(0, str(TOOLS))
    import train
    config = 'configs/mobilemamba_t2_in1k.py'
    cfg = train.load_config(config)
    with pytest.raises(RuntimeError) as err:
        train.check_amp_device(cfg, config, by_flag=False)
    print(f'\n{err.value}')
    assert str(err.value).startswith(
        f"{config} (optim_wrapper.type='NonFiniteGuardAmpOptimWrapper'): "
        'mixed-precision training needs a CUDA GPU')
    # the float32 counterpart keeps the non-finite guard
    fix = '--cfg-options optim_wrapper.type=NonFiniteGuardOptimWrapper'
    assert f'On CPU, train in float32 with {fix}.' in str(err.value)
    # the fix the message gives is accepted
    fixed = train.load_config(
        config, {'optim_wrapper.type': 'NonFiniteGuardOptimWrapper'})
    train.check_amp_device(fixed, config, by_flag=False)


def test_mmengine_amp_wrapper_refuses_cpu_bfloat16_too(monkeypatch):
    """What the --amp message says about mmengine 0.10.7: no CPU autocast
    training, float16 or bfloat16 (so no --cfg-options route to it)."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper as amp
    for name in ('is_cuda_available', 'is_npu_available', 'is_mlu_available',
                 'is_musa_available'):
        monkeypatch.setattr(amp, name, lambda: False)
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(AssertionError, match='only available training on '
                       'gpu, npu, mlu or musa'):
        amp.AmpOptimWrapper(dtype='bfloat16', optimizer=optimizer)


# --------------------------------------- converters: family and variant --

def _official_file(variant, path, wrap):
    from mmtinyvim.models.checkpoint_family import family_module
    from mmtinyvim.models.zoo import build_classifier
    family = variant.split('-')[0]
    state = family_module(family).to_official_classifier(
        build_classifier(variant)[0].state_dict())
    torch.save(wrap(state), path)
    return path


@pytest.mark.parametrize('to', ['classifier', 'backbone'])
def test_converter_refuses_the_other_family(to, tmp_path):
    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import official_to_mmtinyvim
    src = _official_file('tinyvim-s', tmp_path / 'tv.pth',
                         lambda sd: {'model': sd})
    out = tmp_path / 'out.pth'
    with pytest.raises(SystemExit) as err:
        official_to_mmtinyvim.main([str(src), str(out), '--family',
                                    'mobilemamba', '--to', to])
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'error: {src} is a TinyViM checkpoint (keys network.0.0.layer_scale, '
        'network.0.0.dwconv.conv.c.weight, ...), not a MobileMamba one: pass '
        '--family tinyvim, or convert the MobileMamba file you meant.')
    assert not out.exists()


def test_converter_refuses_the_wrong_variant(tmp_path, capsys):
    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import mmtinyvim_to_official
    import official_to_mmtinyvim
    src = _official_file('tinyvim-b', tmp_path / 'tv_b.pth',
                         lambda sd: {'model': sd})
    out = tmp_path / 'out.pth'
    with pytest.raises(SystemExit) as err:
        official_to_mmtinyvim.main([str(src), str(out), '--family',
                                    'tinyvim', '--arch', 's'])
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'error: {src} is not a TinyViM-S checkpoint: its tensors are those '
        'of TinyViM-B: pass --arch b.')
    assert not out.exists()
    official_to_mmtinyvim.main([str(src), str(out), '--family', 'tinyvim',
                                '--arch', 'B'])
    assert f'tensors (TinyViM-B) to {out}' in capsys.readouterr().out

    # mmpretrain -> official: the classifier's backbone.* keys are checked
    with pytest.raises(SystemExit) as err:
        mmtinyvim_to_official.main([str(out), str(tmp_path / 'back.pth'),
                                    '--family', 'mobilemamba'])
    assert str(err.value).startswith(f'error: {out} is a TinyViM checkpoint '
                                     '(keys backbone.network.')
    with pytest.raises(SystemExit, match=r'is not a TinyViM-L checkpoint: '
                       r'its tensors are those of TinyViM-B: pass --arch b'):
        mmtinyvim_to_official.main([str(out), str(tmp_path / 'back.pth'),
                                    '--family', 'tinyvim', '--arch', 'l'])
    with pytest.raises(SystemExit, match=r"Unknown TinyViM arch 'xs'; "
                       'valid: s, b, l'):
        mmtinyvim_to_official.main([str(out), str(tmp_path / 'back.pth'),
                                    '--family', 'tinyvim', '--arch', 'xs'])
    assert not (tmp_path / 'back.pth').exists()


def test_converter_names_mobilemamba_b_variants_sharing_shapes(tmp_path,
                                                               capsys):
    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import official_to_mmtinyvim
    src = _official_file('mobilemamba-b1', tmp_path / 'mm_b1.pth',
                         lambda sd: sd)
    official_to_mmtinyvim.main([str(src), str(tmp_path / 'out.pth'),
                                '--family', 'mobilemamba', '--arch', 'b2',
                                '--to', 'backbone'])
    assert ('(MobileMamba-B1/MobileMamba-B2/MobileMamba-B4)'
            in capsys.readouterr().out)
    with pytest.raises(SystemExit, match='its tensors are those of '
                       'MobileMamba-B1/MobileMamba-B2/MobileMamba-B4: pass '
                       '--arch b1'):
        official_to_mmtinyvim.main([str(src), str(tmp_path / 'out2.pth'),
                                    '--family', 'mobilemamba', '--arch',
                                    't2'])


# ------------------------------------------------------ progress bars ------

def test_converters_show_progress_on_stderr_results_on_stdout(tmp_path,
                                                              capsys):
    sys.path.insert(0, str(TOOLS / 'model_converters'))
    import mmtinyvim_to_official
    import official_to_mmtinyvim
    src = _official_file('mobilemamba-t2', tmp_path / 'mm.pth',
                         lambda sd: {'net': sd})
    official_to_mmtinyvim.main([str(src), str(tmp_path / 'cls.pth'),
                                '--family', 'mobilemamba'])
    mmtinyvim_to_official.main([str(tmp_path / 'cls.pth'),
                                str(tmp_path / 'back.pth'),
                                '--family', 'mobilemamba'])
    out, err = capsys.readouterr()
    assert err.count('3/3') == 2 and 'converting' in err
    assert out.count('wrote') == 2 and '3/3' not in out


def test_track_draws_a_bar_for_several_items_only():
    import io

    from mmtinyvim.utils.progress import track
    file = io.StringIO()
    assert list(track([1, 2, 3], 'three', file=file)) == [1, 2, 3]
    assert file.getvalue().startswith('three\n') and '3/3' in file.getvalue()
    file = io.StringIO()
    assert list(track(['one'], 'one', file=file)) == ['one']
    assert file.getvalue() == ''
