"""An optimizer constructor: mmengine's, with equal parameter groups
merged."""
from typing import Dict, List

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


def merge_param_groups(groups: List[Dict]) -> List[Dict]:
    """One group per distinct set of options (lr, weight_decay, ...), in
    order of first appearance; each parameter keeps its own options."""
    merged: Dict[tuple, Dict] = {}
    for group in groups:
        options = {k: v for k, v in group.items() if k != 'params'}
        key = tuple(sorted(options.items()))
        if key not in merged:
            merged[key] = dict(options, params=[])
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's :class:`DefaultOptimWrapperConstructor`, then parameters
    with equal options in one group.

    With a ``paramwise_cfg`` mmengine gives every parameter a group of its
    own, and torch's optimizers update group by group, so a step of AdamW
    over a backbone's few hundred tensors becomes a few thousand small
    kernel launches: for the MobileMamba detection and segmentation configs
    the optimizer took most of a training step (docs/benchmark.md, run I).
    The update of each parameter is unchanged (AdamW and SGD treat every
    parameter on its own with its group's options), and the param
    schedulers, which scale each group's lr from its initial lr, act the
    same on the merged groups.
    """

    def add_params(self, params: List[dict], module, prefix: str = '',
                   is_dcn_module=None) -> None:
        super().add_params(params, module, prefix, is_dcn_module)
        if not prefix:  # the outermost call, after mmengine's recursion
            params[:] = merge_param_groups(params)
