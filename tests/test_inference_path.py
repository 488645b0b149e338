"""No hidden inference path: the backbones run as built (a setting changed
between two calls is seen by the second), and DeployHook serves validation
and testing on a folded copy without touching the trained network."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmtinyvim.engine import DeployHook, InferencePath, for_inference
from mmtinyvim.models.backbones.mobilemamba import MobileMamba
from mmtinyvim.models.backbones.tinyvim import TinyViM
from mmtinyvim.ops import scan

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


def _error(outputs, reference):
    return max(float((o - r).abs().max() / r.std())
               for o, r in zip(outputs, reference))


def _spy_on_scans(monkeypatch):
    used = []
    for name, backend in list(scan.BACKEND_TABLE.items()):
        def impl(*args, _name=name, _impl=backend.impl, **kwargs):
            used.append(_name)
            return _impl(*args, **kwargs)
        monkeypatch.setitem(scan.BACKEND_TABLE, name,
                            backend._replace(impl=impl))
    return used


def test_a_changed_scan_backend_is_seen_by_the_next_call(monkeypatch):
    used = _spy_on_scans(monkeypatch)
    backbone = TinyViM(arch='s', scan_backend='torch').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        backbone(x)
    assert used and set(used) == {'torch'}
    used.clear()
    backbone.scan_backend = 'reference'
    with torch.no_grad():
        backbone(x)
    assert used and set(used) == {'reference'}


def test_the_backbone_has_no_call_override_and_no_removed_switch():
    assert 'forward' not in vars(_backbone('tinyvim-s'))
    assert TinyViM.__call__ is nn.Module.__call__
    # the switch of the removed hidden path is no argument any more
    with pytest.raises(TypeError, match='fast_inference'):
        TinyViM('s', fast_inference=False)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_the_folded_copy_computes_the_network(name):
    backbone = _backbone(name)
    x = torch.randn(2, 3, 64, 96)
    # with autograd on the network runs its blocks unfolded
    # (models.layers.FoldsForInference folds them by itself without it)
    plain = [o.detach() for o in backbone(x)]
    path = InferencePath(backbone).refold().install()
    with torch.no_grad():
        folded = backbone(x)
    assert path.network.deploy and not backbone.deploy
    path.remove()
    assert 'forward' not in vars(backbone)
    assert 0 < _error(folded, plain) < 1e-4  # other kernels, same function


def test_folded_outputs_keep_the_layout_of_the_network_as_built(monkeypatch):
    # CPU twin of the CUDA copy's channels-last run: mmcv's RoIAlign reads
    # NCHW memory and ignores strides
    monkeypatch.setattr(InferencePath, 'channels_last', True)
    backbone = _backbone('tinyvim-s')
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        plain = backbone(x)
        path = InferencePath(backbone).refold().install()
        outputs = backbone(x)
    assert path.memory_format == torch.channels_last
    assert all(o.is_contiguous() for o in outputs)
    assert _error(outputs, plain) < 1e-4


class _CountingPath(InferencePath):
    """The graph policy on the CPU: a 'capture' that records the key and
    replays the folded copy."""
    captured = []

    @staticmethod
    def _graphable(images):
        return images.dim() == 4 and len(images) > 0

    def _capture(self, images):
        self.captured.append(tuple(images.shape))

        def replay(batch):
            return self.network(batch)
        return replay


class _Detectorish(BaseModel):
    def __init__(self):
        super().__init__()
        self.backbone = _backbone('mobilemamba-t2')
        self.calls = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feats = self.backbone(inputs)
        self.calls.append(type(vars(self.backbone).get('forward')).__name__)
        if mode == 'loss':
            return dict(loss=sum(f.mean() for f in feats))
        return [dict(score=float(feats[-1].mean()))] * len(inputs)


class _Data(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        torch.manual_seed(i)
        return dict(inputs=torch.randn(3, 64, 64))


def test_deploy_hook_validates_on_the_copy_and_keeps_the_weights(
        tmp_path, monkeypatch):
    from mmengine.evaluator import BaseMetric

    class Count(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.extend(data_samples)

        def compute_metrics(self, results):
            return dict(n=len(results))

    monkeypatch.setattr(_CountingPath, 'captured', [])
    monkeypatch.setattr('mmtinyvim.engine.hooks.InferencePath', _CountingPath)
    model = _Detectorish()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = dict(dataset=_Data(), batch_size=2,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=model, work_dir=str(tmp_path), val_dataloader=loader,
        val_cfg=dict(), val_evaluator=[Count()],
        custom_hooks=[dict(type='DeployHook')],
        default_hooks=dict(logger=None, checkpoint=None))
    runner.val()
    runner.val()
    # every validation call ran the folded copy; the shape repeated and was
    # "recorded" once, and the second epoch's refold kept that graph
    assert model.calls == ['_CountingPath'] * 4
    assert _CountingPath.captured == [(2, 3, 64, 64)]
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not model.backbone.deploy
    assert 'forward' not in vars(model.backbone)  # its own forward again


def test_deploy_hook_refolds_after_the_ema_swap():
    hook = DeployHook()
    from mmengine.hooks import EMAHook
    from mmengine.runner.priority import get_priority
    assert get_priority(hook.priority) > get_priority(EMAHook.priority)
    with pytest.raises(ValueError, match='in_place must be True or False'):
        DeployHook(in_place='yes')


def test_for_inference_takes_the_backbones_place_in_a_model():
    backbone = _backbone('tinyvim-s')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = backbone(x)
    holder = nn.Module()
    holder.backbone = copy.deepcopy(backbone)
    holder.backbone = for_inference(holder.backbone, x, compile=False)
    outputs = holder.backbone(x)
    assert holder.backbone.network.deploy
    assert _error(outputs, plain) < 1e-4
