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
