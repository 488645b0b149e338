"""The backbones' default inference path (mmtinyvim.engine.InferencePath):
inference calls run a folded copy (CUDA graphs for repeated shapes on a
GPU), equal to the network as built, following its weights, and never in
the way of training, hooks, tracing or export."""
import copy

import pytest
import torch
import torch.nn as nn

from mmtinyvim.engine import InferencePath, inference_path_of
from mmtinyvim.engine import accelerate
from mmtinyvim.models.backbones.mobilemamba import MobileMamba
from mmtinyvim.models.backbones.tinyvim import TinyViM
from tests.golden import plain_network

BACKBONES = {'tinyvim-s': lambda **kw: TinyViM('s', **kw),
             'mobilemamba-t2': lambda **kw: MobileMamba('t2', **kw)}


def _backbone(name, **kwargs):
    torch.manual_seed(0)
    backbone = BACKBONES[name](**kwargs)
    # BatchNorm statistics away from (0, 1), so that folding matters
    for module in backbone.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return backbone.eval()


def _plain_outputs(backbone, x):
    backbone.fast_inference = False
    try:
        with torch.no_grad():
            return backbone(x)
    finally:
        backbone.fast_inference = True


def _error(outputs, reference):
    return max(float((o - r).abs().max() / r.std())
               for o, r in zip(outputs, reference))


@pytest.mark.parametrize('name', list(BACKBONES))
def test_inference_runs_the_folded_copy_with_the_same_outputs(name):
    backbone = _backbone(name)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outputs = backbone(x)
    path = inference_path_of(backbone)
    assert path is not None and path.network.deploy
    assert not backbone.deploy  # the backbone itself is left as built
    error = _error(outputs, _plain_outputs(backbone, x))
    print(f'\n{name}: default inference path vs the network as built '
          f'max|d|/std {error:.2e}')
    assert 0 < error < 1e-4  # folded (not the same kernels), same function


@pytest.mark.parametrize('name', list(BACKBONES))
def test_training_after_evaluation_and_new_weights_are_followed(name):
    backbone = _backbone(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        backbone(x)
    # a training step between two evaluations
    backbone.train()
    loss = sum(o.square().mean() for o in backbone(x))
    loss.backward()
    assert all(p.grad is not None for p in backbone.parameters()
               if p.requires_grad)
    nn.utils.clip_grad_norm_(backbone.parameters(), 1.0)
    torch.optim.SGD(backbone.parameters(), lr=1e-2).step()
    backbone.eval()
    with torch.no_grad():
        after_step = backbone(x)
    assert _error(after_step, _plain_outputs(backbone, x)) < 1e-4
    # a checkpoint loaded in eval mode, without any train()/eval() call,
    # into the weights (copied) or as new weight tensors (assign=True)
    for scale, assign in ((0.9, False), (1.2, True)):
        other = _backbone(name)
        for p in other.parameters():
            p.data.mul_(scale)
        backbone.load_state_dict(other.state_dict(), assign=assign)
        with torch.no_grad():
            after_load = backbone(x)
        assert _error(after_load, _plain_outputs(other, x)) < 1e-4, assign
    # weights written through .data: seen after the next eval()
    with torch.no_grad():
        before = backbone(x)
    for p in backbone.parameters():
        p.data.mul_(1.1)
    backbone.eval()
    with torch.no_grad():
        after_data = backbone(x)
    assert _error(after_data, before) > 1e-3
    assert _error(after_data, _plain_outputs(backbone, x)) < 1e-4


@pytest.mark.parametrize('name', list(BACKBONES))
def test_repeated_calls_do_not_walk_the_modules(name, monkeypatch):
    # the per-call check reads the weights' version counters only; the
    # list of weights is re-read after train()/eval(), .to() or a load
    backbone = _backbone(name)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        backbone(x)
    walks = []
    original = nn.Module.parameters

    def counting(self, *args, **kwargs):
        if self is backbone:  # not the folded copy's own dtype lookup
            walks.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, 'parameters', counting)
    with torch.no_grad():
        backbone(x)
    assert walks == []
    backbone.eval()
    with torch.no_grad():
        backbone(x)
    assert walks  # re-read after eval()


@pytest.mark.parametrize('name', list(BACKBONES))
def test_outputs_keep_the_layout_of_the_network_as_built(name, monkeypatch):
    # CPU twin of the CUDA copy's channels-last run: mmcv's RoIAlign (every
    # two-stage detector's head) indexes NCHW memory and ignores strides,
    # so channels-last features would be read as other pixels
    monkeypatch.setattr(InferencePath, 'channels_last', True)
    backbone = _backbone(name)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outputs = backbone(x)
    assert inference_path_of(backbone).memory_format == torch.channels_last
    assert all(o.is_contiguous() for o in outputs)
    assert _error(outputs, _plain_outputs(backbone, x)) < 1e-4
    from mmcv.ops import roi_align
    rois = torch.tensor([[0., 3., 2., 40., 30.], [1., 10., 5., 60., 60.]])
    features = outputs[0]
    pooled = roi_align(features, rois, 7, 1 / 4, 0, 'avg', True)
    expected = roi_align(_plain_outputs(backbone, x)[0], rois, 7, 1 / 4, 0,
                         'avg', True)
    assert float((pooled - expected).abs().max()) < 1e-4 * float(
        expected.std())


def test_training_and_gradient_calls_run_the_network_itself():
    backbone = _backbone('mobilemamba-t2')
    x = torch.randn(2, 3, 64, 64)
    backbone(x)  # eval mode, gradients on
    backbone.train()
    with torch.no_grad():
        backbone(x)  # train mode, gradients off
    assert inference_path_of(backbone) is None


def test_forward_hooks_see_the_real_modules():
    backbone = _backbone('tinyvim-s')
    calls = []
    handle = backbone.patch_embed.register_forward_hook(
        lambda module, args, output: calls.append(output.shape))
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64))
    assert calls == [torch.Size([1, 48, 16, 16])]
    handle.remove()
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64))
    assert len(calls) == 1  # without hooks, the folded copy runs


def test_tracing_sees_the_network_itself():
    backbone = _backbone('mobilemamba-t2')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        traced = torch.jit.trace(backbone, x, check_trace=False)
    assert inference_path_of(backbone) is None
    names = {node.kind() for node in traced.inlined_graph.nodes()}
    assert 'aten::batch_norm' in names  # not the folded copy


def test_switch_off_and_bad_value():
    backbone = _backbone('tinyvim-s', fast_inference=False)
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64))
    assert inference_path_of(backbone) is None
    with pytest.raises(ValueError, match=r'fast_inference must be True .* '
                       r"or False .*, got 'yes'"):
        TinyViM('s', fast_inference='yes')


def test_bad_input_gets_the_backbones_own_error():
    backbone = _backbone('tinyvim-s')
    with torch.no_grad(), pytest.raises(ValueError) as fast:
        backbone(torch.randn(1, 4, 64, 64))
    plain_network(backbone)
    with torch.no_grad(), pytest.raises(ValueError) as plain:
        backbone(torch.randn(1, 4, 64, 64))
    assert str(fast.value) == str(plain.value)


class _CountingPath(InferencePath):
    """The graph policy on the CPU: a 'capture' that records the key and
    replays the folded copy."""

    def __init__(self):
        super().__init__()
        self.captured, self.replayed = [], 0

    @staticmethod
    def _graphable(images):
        return images.dim() == 4 and len(images) > 0

    def _capture(self, images):
        self.captured.append(tuple(images.shape))

        def replay(batch):
            self.replayed += 1
            return self.network(batch)
        return replay


def test_graph_policy_records_repeated_shapes_up_to_the_limit(monkeypatch):
    backbone = _backbone('mobilemamba-t2')
    path = _CountingPath()
    path.max_graphs = 2
    monkeypatch.setitem(accelerate._PATHS, backbone, path)
    shapes = [(1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64),
              (1, 3, 96, 64), (2, 3, 64, 64), (2, 3, 64, 64),
              (1, 3, 96, 64), (1, 3, 96, 64)]
    with torch.no_grad():
        for shape in shapes:
            backbone(torch.randn(shape))
    # recorded at the second sighting; the third shape finds no free slot
    assert path.captured == [(1, 3, 64, 64), (2, 3, 64, 64)]
    assert path.replayed == 1
    # new weights of the same layout are copied in: the graphs stay
    backbone.train()
    backbone.eval()
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64))
    assert path.replayed == 2 and len(path.graphs) == 2
    # a layout change (another dtype) starts afresh
    backbone.double()
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    assert path.graphs == {}
    assert next(path.network.parameters()).dtype == torch.float64


def test_for_inference_replaces_the_default_path():
    from mmtinyvim.engine import for_inference
    backbone = _backbone('tinyvim-s')
    model = copy.deepcopy(backbone)
    predict = for_inference(model, torch.randn(1, 3, 64, 64), compile=False)
    predict(torch.randn(1, 3, 64, 64))
    assert not model.fast_inference
    assert inference_path_of(model) is None


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='CUDA graphs need a GPU (run on the device machine; results in '
    'docs/benchmark.md)')


@needs_cuda
@pytest.mark.parametrize('name', list(BACKBONES))
@pytest.mark.parametrize('amp', [False, True])
def test_graphed_default_path_on_cuda(name, amp):
    backbone = _backbone(name).cuda()
    batches = [torch.randn(4, 3, 96, 128, device='cuda') for _ in range(4)]
    odd = torch.randn(3, 3, 80, 112, device='cuda')
    flags = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad(), torch.autocast('cuda', torch.float16,
                                             enabled=amp):
            outputs = [backbone(x) for x in batches] + [backbone(odd)]
            kept = [tuple(o.clone() for o in out) for out in outputs]
            reference = [_plain_outputs(backbone, x)
                         for x in batches + [odd]]
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags
    path = inference_path_of(backbone)
    assert len(path.graphs) == 1  # the repeated shape only
    errors = [_error(out, ref) for out, ref in zip(outputs, reference)]
    # replayed outputs are fresh tensors: later replays do not change them
    assert all(_error(out, k) == 0 for out, k in zip(outputs, kept))
    print(f'\n{name} {"AMP" if amp else "fp32"}: default path (folded, '
          f'channels-last, graphs) vs the network as built max|d|/std '
          + ', '.join(f'{e:.1e}' for e in errors))
    assert max(errors) < (5e-2 if amp else 1e-4)
    # the layout of the network as built (mmcv's RoIAlign reads NCHW)
    assert all(o.is_contiguous() for out in outputs for o in out)


def test_mask_rcnn_detections_through_the_channels_last_copy(monkeypatch):
    """Integration twin of the layout check: a Mask R-CNN whose backbone
    runs the default path with a channels-last copy (forced on the CPU, as
    on CUDA) predicts the same boxes and masks as the network as built.
    With channels-last features mmcv's RoIAlign read other pixels."""
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    monkeypatch.setattr(InferencePath, 'channels_last', True)
    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/maskrcnn_tinyvim_s_coco.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep boxes
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 128, 160)
    sample = DetDataSample(metainfo=dict(
        img_shape=(128, 160), ori_shape=(128, 160), pad_shape=(128, 160),
        batch_input_shape=(128, 160), scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        fast = model.predict(x, [sample.clone()])[0].pred_instances
        assert inference_path_of(model.backbone) is not None
        plain = plain_network(model).predict(x, [sample.clone()])[0]
    plain = plain.pred_instances
    assert len(fast) == len(plain) > 0
    assert torch.allclose(fast.bboxes, plain.bboxes, atol=1e-3)
    assert torch.allclose(fast.scores, plain.scores, atol=1e-4)
    assert (fast.masks != plain.masks).float().mean() < 1e-3
