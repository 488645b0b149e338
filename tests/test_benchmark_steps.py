"""tools/analysis_tools/benchmark.py --step-config: whole mmengine train/test
steps of detectors and segmentors on a synthetic batch, run here on CPU at a
small size (the tool itself times them on CUDA)."""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.modules import load_file

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = str(REPO / 'configs/maskrcnn_tinyvim_s_coco.py')
RETINA_CONFIG = str(REPO / 'configs/retinanet_tinyvim_s_coco.py')
SEG_CONFIG = str(REPO / 'configs/fpn_mobilemamba_t2_ade20k.py')


def _fast(steps_batch=None):
    """One warm-up call and one timed call (time_loop times at least
    one)."""
    return SimpleNamespace(warmup=1, min_time=0.0, steps_batch=steps_batch)


tool = load_file('tools/analysis_tools/benchmark.py', 'benchmark_tool')


def _config(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return cfg


def test_synthetic_det_batch_has_valid_boxes_labels_and_masks():
    cfg = _config(DET_CONFIG)
    height, width = 64, 96  # not square: swapped axes would show
    data = tool.synthetic_batch(cfg, 2, height, width, 'cpu', num_objects=4)
    assert len(data['inputs']) == len(data['data_samples']) == 2
    for image, sample in zip(data['inputs'], data['data_samples']):
        assert image.dtype == torch.uint8
        assert image.shape == (3, height, width)
        assert sample.img_shape == sample.ori_shape == (height, width)
        assert sample.scale_factor == (1.0, 1.0)
        boxes = sample.gt_instances.bboxes.tensor
        assert boxes.shape == (4, 4)
        x1, y1, x2, y2 = boxes.unbind(1)
        assert (x1 >= 0).all() and (y1 >= 0).all()
        assert (x2 <= width).all() and (y2 <= height).all()
        assert (x1 < x2).all() and (y1 < y2).all()
        labels = sample.gt_instances.labels
        assert labels.dtype == torch.int64
        assert ((labels >= 0) & (labels < 80)).all()
        masks = sample.gt_instances.masks
        assert (masks.height, masks.width) == (height, width)
        assert masks.masks.shape == (4, height, width)
        for mask, (bx1, by1, bx2, by2) in zip(masks.masks, boxes.tolist()):
            ys, xs = np.nonzero(mask)
            assert len(ys), 'an empty mask'
            # each mask fills its box: inside it (to the pixel), not outside
            assert xs.min() == int(bx1) and ys.min() == int(by1)
            assert xs.max() + 1 == math.ceil(bx2)
            assert ys.max() + 1 == math.ceil(by2)
            assert mask.sum() == len(np.unique(ys)) * len(np.unique(xs))
    again = tool.synthetic_batch(cfg, 2, height, width, 'cpu', num_objects=4)
    assert torch.equal(again['inputs'][1], data['inputs'][1])
    assert torch.equal(again['data_samples'][1].gt_instances.bboxes.tensor,
                       data['data_samples'][1].gt_instances.bboxes.tensor)


def test_synthetic_det_batch_has_no_masks_without_a_mask_head():
    data = tool.synthetic_batch(_config(RETINA_CONFIG), 1, 64, 64, 'cpu')
    assert 'masks' not in data['data_samples'][0].gt_instances


def test_synthetic_seg_batch_has_labels_in_range_and_ignored_pixels():
    cfg = _config(SEG_CONFIG)
    data = tool.synthetic_batch(cfg, 2, 64, 96, 'cpu')
    for image, sample in zip(data['inputs'], data['data_samples']):
        assert image.dtype == torch.uint8 and image.shape == (3, 64, 96)
        assert sample.img_shape == sample.ori_shape == (64, 96)
        labels = sample.gt_sem_seg.data
        assert labels.shape == (1, 64, 96)
        ignored = labels == 255
        assert ignored.any() and not ignored.all()
        assert ((labels[~ignored] >= 0) & (labels[~ignored] < 150)).all()


@pytest.mark.parametrize('config, losses', [
    (DET_CONFIG, ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask')),
    (SEG_CONFIG, ('decode.loss_ce', )),
])
def test_train_step_learns_from_the_synthetic_ground_truth(config, losses):
    """What bench_steps times as ``train-step``, once: the losses use the
    ground truth (the mask loss the masks) and the optimizer moves the
    weights."""
    torch.manual_seed(0)
    cfg = _config(config)
    model = tool.build_step_model(cfg, 'cpu').train()
    optim_wrapper = tool.build_step_optim_wrapper(cfg, model, 'cpu')
    assert type(optim_wrapper.optimizer).__name__ == (
        cfg.optim_wrapper.optimizer.type)
    # batch 2: at 64 px MobileMamba's deepest maps are 1x1, and BatchNorm
    # needs more than one value per channel in training
    data = tool.synthetic_batch(cfg, 2, 64, 64, 'cpu')
    before = {name: p.detach().clone()
              for name, p in model.named_parameters() if p.requires_grad}
    log_vars = model.train_step(data, optim_wrapper)
    for name in losses + ('loss', ):
        assert math.isfinite(float(log_vars[name].detach())), name
    assert float(log_vars['loss'].detach()) > 0
    changed = [name for name, p in model.named_parameters()
               if name in before and not torch.equal(before[name], p)]
    assert any(name.startswith('backbone.') for name in changed)
    assert any('head' in name for name in changed)


def _check_records(rows, config, parts, batch, size):
    assert [row['part'] for row in rows] == list(parts)
    for row in rows:
        assert 'error' not in row, row
        assert row['config_file'] == config
        assert row['batch'] == batch and row['size'] == size
        assert math.isfinite(row['ms']) and row['ms'] > 0
        assert row['iters'] >= 1
        assert row['peak_GiB'] is None  # CPU: no CUDA memory statistics
        if row['part'] == 'train-step':
            assert math.isfinite(row['loss']) and row['loss'] > 0


def test_bench_steps_times_a_detector_on_cpu():
    # the fp16/bf16 test step is left out: mmcv's CPU NMS takes float32
    # scores only (bench_steps' docstring)
    torch.manual_seed(0)
    parts = ('train-step', 'test-step-fp32')
    rows = tool.bench_steps(DET_CONFIG, _fast(1),
                            device='cpu', height=64, width=64, parts=parts)
    _check_records(rows, DET_CONFIG, parts, 1, '64x64')
    assert rows[0]['backbone'] == 'TinyViMs'
    assert rows[1]['dets_per_img'] >= 0


def test_bench_steps_times_a_segmentor_on_cpu():
    torch.manual_seed(0)
    rows = tool.bench_steps(SEG_CONFIG, _fast(2),
                            device='cpu', height=64, width=64)
    _check_records(rows, SEG_CONFIG, tool.STEP_PARTS, 2, '64x64')
    assert rows[0]['backbone'] == 'MobileMambat2'


def test_bench_steps_reports_a_failing_part_and_goes_on():
    """An exception in one part (here: a batch too small for BatchNorm in
    training) is one record with ``error``; the other parts still run."""
    torch.manual_seed(0)
    rows = tool.bench_steps(SEG_CONFIG, _fast(1),
                            device='cpu', height=64, width=64)
    assert [row['part'] for row in rows] == list(tool.STEP_PARTS)
    assert 'Expected more than 1 value per channel' in rows[0]['error']
    assert all('error' not in row and row['ms'] > 0 for row in rows[1:])


def test_steps_cli_options():
    args = tool.parse_args(['--steps-only', '--step-config', DET_CONFIG,
                            SEG_CONFIG, '--steps-batch', '3'])
    assert args.step_config == [DET_CONFIG, SEG_CONFIG]
    assert args.steps_batch == 3 and args.steps_only
    assert tool.parse_args([]).step_config == []


@pytest.mark.parametrize('flag', ['--steps-batch', '--parts-batch'])
def test_cli_rejects_a_batch_below_one(flag, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args([flag, '0'])
    assert f'{flag} must be >= 1, got 0' in capsys.readouterr().err


def test_training_runs_through_the_configs_graph_hook_where_it_can():
    """The benchmark trains as tools/train.py does: through the config's
    CUDAGraphTrainingHook, which on a CPU says why it does not run."""
    cfg = _config(DET_CONFIG)
    model = tool.build_step_model(cfg, 'cpu')
    what = tool.install_training_hook(cfg, model)
    assert what.startswith('eager (') and 'needs a CUDA GPU' in what
    cfg.custom_hooks = []
    assert 'no CUDAGraphTrainingHook' in tool.install_training_hook(
        cfg, model)
