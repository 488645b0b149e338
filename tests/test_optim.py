"""MergedGroupsOptimWrapperConstructor: mmengine's parameter groups merged
where their options are equal, with the same updates."""
import copy

import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import mmtinyvim.engine  # noqa: F401  (registers the constructor)
from mmtinyvim import get_config_path, list_configs
from mmtinyvim.engine import merge_param_groups


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
                                      nn.Conv2d(8, 8, 1))
        self.out_norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.backbone(x).mean((2, 3))
        return self.head(self.out_norm(x))


def _wrapper(model, constructor=None):
    cfg = dict(type='OptimWrapper',
               optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
               paramwise_cfg=dict(custom_keys={
                   'norm': dict(decay_mult=0.), 'head': dict(lr_mult=10.)}))
    if constructor:
        cfg['constructor'] = constructor
    return build_optim_wrapper(model, cfg)


def test_merged_groups_update_every_parameter_as_mmengine_does():
    torch.manual_seed(0)
    model = _Net()
    reference = copy.deepcopy(model)
    merged = _wrapper(model, 'MergedGroupsOptimWrapperConstructor')
    default = _wrapper(reference)
    assert len(default.optimizer.param_groups) == len(
        list(model.parameters()))
    # lr x1 / x10 with decay, and the norms' lr x1 without decay; the head's
    # bias (bias_lr_mult is not set) shares the head's group
    assert len(merged.optimizer.param_groups) == 3
    for _ in range(3):
        x = torch.randn(4, 3, 8, 8)
        for net, wrapper in ((model, merged), (reference, default)):
            wrapper.update_params(net(x).square().mean())
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)


def test_merge_keeps_order_and_options():
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = merge_param_groups([dict(params=[a], lr=1.0),
                                 dict(params=[b], lr=2.0),
                                 dict(params=[c], lr=1.0)])
    assert groups == [dict(params=[a, c], lr=1.0), dict(params=[b], lr=2.0)]


def test_configs_with_paramwise_options_merge_their_groups():
    from mmengine.config import Config
    for name in list_configs():
        cfg = Config.fromfile(get_config_path(name))
        if cfg.optim_wrapper.get('paramwise_cfg'):
            assert cfg.optim_wrapper.get('constructor') == \
                'MergedGroupsOptimWrapperConstructor', name
