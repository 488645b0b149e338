"""Every config's merged values equal those recorded before the configs
inherited mmdet's / mmseg's / mmpretrain's own bases (``pkg::`` _base_),
except the keys listed in CHANGED, each with its reason.

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
    # mmseg's dataset base and runtime bring their test-time augmentation
    # (tools/test.py --tta), ours with the image-size check
    ('*ade20k*', 'img_ratios', "mmseg's ADE20K TTA scales"),
    ('*ade20k*', 'tta_pipeline*', "mmseg's ADE20K TTA pipeline"),
    ('*ade20k*', 'tta_model.type', "mmseg's SegTTAModel"),
    ('_base_/default_runtime_seg.py', 'tta_model.type', "mmseg's SegTTAModel"),
    # mmseg's model bases name ImageNet ResNet weights; None (the
    # EncoderDecoder default) keeps them from the backbone
    ('*ade20k.py', 'model.pretrained', 'None instead of absent'),
    ('_base_/models/sem_fpn.py', 'model.pretrained', 'None instead of absent'),
    ('_base_/models/deeplabv3.py', 'model.pretrained',
     'None instead of absent'),
    # mmpretrain's runtime: deterministic=False is mmengine's default
    ('*in1k.py', 'randomness.deterministic', "mmpretrain's runtime"),
    ('_base_/imagenet_mobilemamba.py', 'randomness.deterministic',
     "mmpretrain's runtime"),
    ('_base_/default_runtime_cls.py', 'randomness.*',
     "mmpretrain's runtime (seed None: each config sets its seed)"),
    # the model bases alone (every leaf config sets its own backbone and
    # these channels): an emptied backbone, the ResNet channels of the
    # upstream base
    ('_base_/models/*', 'model.backbone', 'emptied upstream backbone'),
    ('_base_/models/mask_rcnn_fpn.py', 'model.neck.in_channels',
     'ResNet channels of the upstream base; leaf configs set theirs'),
    ('_base_/models/retinanet_fpn.py', 'model.neck.in_channels',
     'ResNet channels of the upstream base; leaf configs set theirs'),
    ('_base_/models/sem_fpn.py', 'model.neck.in_channels',
     'ResNet channels of the upstream base; leaf configs set theirs'),
    ('_base_/models/deeplabv3.py', 'model.*_head.in_*',
     'ResNet channels/levels of the upstream base; leaf configs set theirs'),
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
