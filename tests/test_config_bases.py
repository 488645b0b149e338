"""Every config's merged values equal those recorded before the configs
inherited mmdet's / mmpretrain's own bases (``pkg::`` _base_), except the
keys listed in CHANGED, each with its reason. The segmentation bases restate
mmseg's, as ``mmseg::`` cannot be resolved on the onedl stack (the comment
atop configs/_base_/models/sem_fpn.py says why); a test here fails once it
can.

tests/data/config_values.json holds the flattened merged values of every
file under configs/ (bases included) as they were: one table of distinct
``key -> repr(value)`` entries and, per config, the indices of its entries.
``python tests/test_config_bases.py --record`` rewrites it from the configs
as they are now (then CHANGED should be emptied).
"""
import fnmatch
import json
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmtinyvim.stack import stack_name

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
RECORD = REPO / 'tests' / 'data' / 'config_values.json'

# (config glob, key, reason): a key listed here may be added, removed or
# changed in the configs the glob matches; any other difference fails.
CHANGED = [
    # engine work in parallel (issue 18): DeployHook listed in plain sight,
    # the non-finite guard as an OptimWrapper subclass instead of a hook
    ('*', 'custom_hooks', 'DeployHook added to the runtimes\' hooks'),
    ('*', 'custom_hooks[[]*', 'DeployHook added to the runtimes\' hooks'),
    ('*', 'optim_wrapper.type',
     'NonFiniteGuard(Amp)OptimWrapper: the guard is the optimizer wrapper '
     'instead of a class swapped in by NonFiniteGuardHook'),
    ('*', 'optim_wrapper.max_consecutive_skips',
     "the guard's limit is the guarded optimizer wrapper's argument"),
    ('*', 'default_hooks.nonfinite_guard*',
     'NonFiniteGuardHook only reports (max_consecutive_skips moved to the '
     'optimizer wrapper)'),
    # mmengine marks every dict that comes from a pkg:: base with the scope
    # of its package (the registry its type is looked up in); our types are
    # registered in those same registries
    ('*', '*._scope_', 'scope mark of a pkg:: base'),
    ('*', '_scope_', 'scope mark of a pkg:: base'),
    # mmpretrain's runtime: deterministic=False is mmengine's default
    ('*in1k.py', 'randomness.deterministic', "mmpretrain's runtime"),
    ('_base_/imagenet_mobilemamba.py', 'randomness.deterministic',
     "mmpretrain's runtime"),
    ('_base_/default_runtime_cls.py', 'randomness.*',
     "mmpretrain's runtime (seed None: each config sets its seed)"),
    # mmpretrain's ImageNet dataset base names its dataset type; ours sets
    # it to the dataset the dataloaders use
    ('*in1k.py', 'dataset_type', 'CheckedImageNet, named by the base'),
    ('_base_/imagenet_mobilemamba.py', 'dataset_type',
     'CheckedImageNet, named by the base'),
    # the model bases alone (every leaf config sets its own backbone and
    # these channels): an emptied backbone, the ResNet channels of the
    # upstream base
    ('_base_/models/*', 'model.backbone', 'emptied upstream backbone'),
    ('_base_/models/mask_rcnn_fpn.py', 'model.neck.in_channels',
     'ResNet channels of the upstream base; leaf configs set theirs'),
    ('_base_/models/retinanet_fpn.py', 'model.neck.in_channels',
     'ResNet channels of the upstream base; leaf configs set theirs'),
]


def flatten(value, prefix='', out=None):
    """Dotted keys (``[i]`` for list items) -> repr of each leaf; a list of
    scalars is one leaf, a container records its type and length."""
    out = {} if out is None else out
    if isinstance(value, dict):
        if not value:
            out[prefix] = '{}'
        for k, v in value.items():
            flatten(v, f'{prefix}.{k}' if prefix else str(k), out)
    elif isinstance(value, (list, tuple)) and any(
            isinstance(v, (dict, list, tuple)) for v in value):
        out[prefix] = f'{type(value).__name__}[{len(value)}]'
        for i, v in enumerate(value):
            flatten(v, f'{prefix}[{i}]', out)
    else:
        out[prefix] = repr(value)
    return out


def config_names():
    return sorted(p.relative_to(CONFIGS).as_posix()
                  for p in CONFIGS.rglob('*.py'))


def merged(name):
    return flatten(Config.fromfile(str(CONFIGS / name)).to_dict())


def record():
    values = {name: merged(name) for name in config_names()}
    entries = sorted({(k, v) for d in values.values() for k, v in d.items()})
    index = {e: i for i, e in enumerate(entries)}
    data = dict(
        entries=[list(e) for e in entries],
        configs={name: sorted(index[e] for e in d.items())
                 for name, d in values.items()})
    RECORD.write_text(json.dumps(data, separators=(',', ':')) + '\n')


def recorded():
    data = json.loads(RECORD.read_text())
    entries = data['entries']
    return {name: dict(entries[i] for i in ids)
            for name, ids in data['configs'].items()}


RECORDED = recorded() if RECORD.exists() else {}


def allowed(name, key):
    return any(fnmatch.fnmatchcase(name, pattern)
               and fnmatch.fnmatchcase(key, key_pattern)
               for pattern, key_pattern, _ in CHANGED)


@pytest.mark.parametrize('scope, base', [
    ('mmdet', '_base_/default_runtime.py'),
    ('mmseg', '_base_/models/fpn_r50.py'),
    ('mmpretrain', '_base_/default_runtime.py'),
])
def test_which_toolbox_bases_resolve(scope, base, tmp_path):
    """``mmdet::`` and ``mmpretrain::`` bases resolve on both stacks,
    ``mmseg::`` only on the OpenMMLab one: on the onedl stack mmengine looks
    for a distribution or module named mmsegmentation."""
    probe = tmp_path / 'probe.py'
    probe.write_text(f'_base_ = [{f"{scope}::{base}"!r}]\n')
    if scope == 'mmseg' and stack_name() == 'onedl':
        try:
            Config.fromfile(str(probe))
        except ModuleNotFoundError as error:
            assert 'mmsegmentation is not installed' in str(error), error
        else:
            pytest.fail(
                'mmseg:: bases resolve on the onedl stack now: the '
                'segmentation bases (configs/_base_/models/sem_fpn.py, '
                'deeplabv3.py, datasets/ade20k.py, default_runtime_seg.py) '
                "can inherit mmseg's instead of restating them")
    else:
        assert Config.fromfile(str(probe)).to_dict()


def test_every_config_has_a_record():
    assert config_names() == sorted(RECORDED), (
        'configs without a recorded before-state (or records of removed '
        'configs); a new config needs no entry here only if it is added '
        'after the record: python tests/test_config_bases.py --record')


@pytest.mark.parametrize('name', config_names())
def test_merged_values_unchanged_except_listed(name):
    before, after = RECORDED[name], merged(name)
    bad = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, '<absent>'), after.get(key, '<absent>')
        if old != new and not allowed(name, key):
            bad.append(f'{key}: {old} -> {new}')
    assert not bad, f'{name}: unlisted changes\n' + '\n'.join(bad)


if __name__ == '__main__':
    if sys.argv[1:] != ['--record']:
        sys.exit('usage: python tests/test_config_bases.py --record')
    record()
