"""NaN / inf weights are refused wherever weights are loaded, naming the
tensors: a backbone's init_cfg Pretrained, tools/test.py, the ONNX export."""
import re
import sys

import pytest
import torch

from mmtinyvim.models.backbones import TinyViM
from mmtinyvim.utils.checkpoint import (NonFiniteWeightsError,
                                        nonfinite_tensors, require_finite)
from tests.modules import REPO, load_file

CLS_CONFIG = str(REPO / 'configs/tinyvim_s_in1k.py')


def _poison(state_dict):
    """``state_dict`` with two NaNs in its first weight and an inf in its
    last floating tensor; returns the copy and the two names."""
    state = {k: v.clone() for k, v in state_dict.items()}
    floating = [k for k, v in state.items() if v.is_floating_point()]
    first, last = floating[0], floating[-1]
    state[first].view(-1)[:2] = float('nan')
    state[last].view(-1)[0] = float('-inf')
    return state, first, last


def test_nonfinite_tensors_names_counts_and_ignores_integer_buffers():
    state = {'a': torch.tensor([1.0, float('nan'), float('inf')]),
             'b': torch.zeros(3), 'n': torch.tensor(7)}
    assert nonfinite_tensors(state) == [('a', 1, 1)]
    require_finite({'b': state['b'], 'n': state['n']})


def test_pretrained_init_cfg_with_nan_weights_is_refused(tmp_path):
    source = TinyViM(arch='s')
    state, first, last = _poison(source.state_dict())
    path = tmp_path / 'nan.pth'
    torch.save({'state_dict': state}, path)
    model = TinyViM(arch='s', init_cfg=dict(type='Pretrained',
                                            checkpoint=str(path)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteWeightsError) as err:
        model.init_weights()
    message = str(err.value)
    print(f'\n{message}')
    numel = state[first].numel()
    assert message.startswith(
        f"Checkpoint {str(path)!r} holds non-finite weights (NaN or inf) in "
        f'2 of {len(state)} entries: {first} (2 NaN, 0 inf of {numel}), '
        f'{last} (0 NaN, 1 inf of {state[last].numel()}). A model with them '
        'outputs NaN.')
    assert message.endswith('Nothing was loaded.')
    assert all(torch.equal(v, before[k])
               for k, v in model.state_dict().items())


def test_onnx_export_refuses_nan_weights(tmp_path):
    from mmtinyvim.models.zoo import build_classifier
    p2o = load_file('tools/deployment/pytorch2onnx.py')
    state, first, _ = _poison(build_classifier('tinyvim-s')[0].state_dict())
    path = tmp_path / 'nan.pth'
    torch.save(state, path)
    with pytest.raises(NonFiniteWeightsError,
                       match=re.escape(f'{first} (2 NaN, 0 inf')):
        p2o.build_classifier_for_export('tinyvim-s', str(path))


def test_test_tool_refuses_nan_checkpoint_before_evaluation(tmp_path):
    """tools/test.py would report top-1 0.0 for such weights. The data root
    does not exist: the refusal comes before any data is read."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    sys.path.insert(0, str(REPO / 'tools'))  # test.py imports train.py
    tool = load_file('tools/test.py', 'mmtinyvim_test_tool')
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    state, first, last = _poison(model.state_dict())
    checkpoint = tmp_path / 'nan.pth'
    torch.save({'state_dict': state}, checkpoint)
    argv = [CLS_CONFIG, str(checkpoint), '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', 'model.backbone.init_cfg=None',
            f'test_dataloader.dataset.data_root={tmp_path / "none"}',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False']
    with pytest.raises(NonFiniteWeightsError) as err:
        tool.main(argv)
    assert f'{first} (2 NaN' in str(err.value)
    assert f'{last} (0 NaN, 1 inf' in str(err.value)


def test_image_demo_refuses_nan_checkpoint(tmp_path):
    import mmcv
    import numpy as np
    image_demo = load_file('tools/demo/image_demo.py')
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    state, first, _ = _poison(model.state_dict())
    checkpoint = tmp_path / 'nan.pth'
    torch.save({'state_dict': state}, checkpoint)
    image = tmp_path / 'photo.jpg'
    mmcv.imwrite(np.zeros((40, 50, 3), np.uint8), str(image))
    out = tmp_path / 'out.jpg'
    with pytest.raises(SystemExit) as exit_:
        image_demo.main([str(image), CLS_CONFIG, str(checkpoint),
                         '--out-file', str(out)])
    assert str(exit_.value.code).startswith(
        f'error: Checkpoint {str(checkpoint)!r} holds non-finite weights')
    assert f'{first} (2 NaN' in str(exit_.value.code)
    assert not out.exists()


# ------------------------------------- --resume from a file that cannot --

DET_CONFIG = str(REPO / 'configs/maskrcnn_tinyvim_s_coco.py')


def _train_tool():
    return load_file('tools/train.py', 'mmtinyvim_train_tool')


def _build(config):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    scope = cfg.default_scope
    registry = {'mmdet': 'mmdet.registry', 'mmpretrain':
                'mmpretrain.registry'}[scope]
    models = __import__(registry, fromlist=['MODELS']).MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(cfg.model)


def _resume(tmp_path, *resume):
    """tools/train.py of the detector config with --resume; the data root
    does not exist, so a run that got past the check would fail on it."""
    return ['--work-dir', str(tmp_path / 'wd'), '--resume', *resume,
            '--cfg-options', 'model.backbone.init_cfg=None',
            f'train_dataloader.dataset.data_root={tmp_path / "none"}/']


TO_START_FROM_WEIGHTS = (
    'Resuming continues a training run of this config from a checkpoint '
    'that run wrote (iter_*.pth / epoch_*.pth in its work_dir). To start a '
    'new training from these weights instead, leave out --resume (and '
    'resume=True) and give --cfg-options load_from=PATH (the weights whose '
    'names and shapes match the model are loaded, the rest keep their '
    'initialisation), or, for backbone weights, '
    'model.backbone.init_cfg.type=Pretrained '
    'model.backbone.init_cfg.checkpoint=PATH (loaded strictly; add '
    "model.backbone.init_cfg.prefix=backbone. for a whole model's file).")


@pytest.mark.parametrize('auto', [False, True])
def test_resume_from_backbone_weights_is_one_clear_error(tmp_path, capsys,
                                                         auto):
    """Before: mmengine's KeyError 'meta' / 'epoch' once training started.
    ``auto``: the file is the newest checkpoint of the work_dir, which
    --resume without a path would continue from."""
    state = TinyViM(arch='s').state_dict()
    path = tmp_path / 'tinyvim_s.pth'
    if auto:
        (tmp_path / 'wd').mkdir()
        path = tmp_path / 'wd' / 'iter_5.pth'
    torch.save(state, path)
    train = _train_tool()
    argv = [DET_CONFIG] + _resume(tmp_path, *([] if auto else [str(path)]))
    with pytest.raises(SystemExit) as exit_:
        train.run(argv)
    assert exit_.value.code == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    print(f'\n{message}')
    first = ', '.join(list(state)[:3])
    assert message == (
        f'Error: Cannot resume {DET_CONFIG} from {path}: it holds a bare '
        f'state dict of {len(state)} tensors (keys {first} ... '
        f'(+{len(state) - 3} more)): the weights of a network on its own (no '
        "key starts with 'backbone.': a backbone?), without the training "
        "state resuming reads ('meta', 'message_hub', 'state_dict' missing). "
        + TO_START_FROM_WEIGHTS)


def test_resume_from_another_models_training_names_the_keys(tmp_path):
    """A classifier's training checkpoint for the detector config: before,
    mmengine loaded the few matching weights and resumed at its epoch."""
    from mmtinyvim.utils.checkpoint import ResumeCheckpointError
    classifier = _build(CLS_CONFIG)
    path = tmp_path / 'epoch_3.pth'
    torch.save({'meta': {'epoch': 3, 'iter': 300,
                         'experiment_name': 'tinyvim_s_in1k_20260101_000000'},
                'state_dict': classifier.state_dict(), 'message_hub': {}},
               path)
    with pytest.raises(ResumeCheckpointError) as err:
        _train_tool().main([DET_CONFIG] + _resume(tmp_path, str(path)))
    message = str(err.value)
    print(f'\n{message}')
    assert message.startswith(
        f"Cannot resume {DET_CONFIG} from {path}: it holds the entries "
        f"'meta', 'state_dict', 'message_hub'; its "
        f'{len(classifier.state_dict())} weights (keys backbone.')
    assert (', saved by the training run tinyvim_s_in1k_20260101_000000, and '
            'they do not fit MaskRCNN, the model this config builds: ') \
        in message
    # the detector's dense output norms, neck and heads; the classifier's head
    assert re.search(r'\d+ missing keys: backbone\.norm0\.', message)
    assert re.search(r'\d+ unexpected keys: head\.', message)
    assert message.endswith(TO_START_FROM_WEIGHTS)


def test_resume_from_weights_without_training_state(tmp_path):
    """The detector's own weights without the training state (a published
    or converted file), given with resume=True in the config options."""
    from mmtinyvim.utils.checkpoint import (ResumeCheckpointError,
                                            resume_problem)
    detector = _build(DET_CONFIG)
    path = tmp_path / 'published.pth'
    torch.save({'meta': {}, 'state_dict': detector.state_dict()}, path)
    argv = [DET_CONFIG, '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
            'resume=True', f'load_from={path}',
            'model.backbone.init_cfg=None',
            f'train_dataloader.dataset.data_root={tmp_path / "none"}/']
    with pytest.raises(ResumeCheckpointError) as err:
        _train_tool().main(argv)
    assert ("are of a two-stage detector (e.g. Mask R-CNN), without the "
            "training state resuming reads (meta['epoch'], meta['iter'], "
            "'message_hub' missing).") in str(err.value)
    # the same weights with the training state resume; a key renamed or a
    # shape changed does not
    state = {'meta': {'epoch': 1, 'iter': 10}, 'message_hub': {},
             'state_dict': detector.state_dict()}
    assert resume_problem(state, detector) is None
    renamed = dict(state['state_dict'])
    renamed['backbone.stem'] = renamed.pop(next(iter(renamed)))
    problem = resume_problem(dict(state, state_dict=renamed), detector)
    assert '1 missing keys: ' in problem
    assert '1 unexpected keys: backbone.stem' in problem
