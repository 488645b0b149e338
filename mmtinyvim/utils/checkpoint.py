"""Loading foreign and mmengine checkpoints strictly and safely.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6. Official
TinyViM checkpoints hold an ``argparse.Namespace`` and mmengine checkpoints
hold message-hub objects; instead of switching safety off we allow exactly
those benign classes.
"""
import argparse
import collections
import os

import torch

# wrappers official training scripts put around the weights, in priority order
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'net', 'net_E')


def _safe_globals():
    allowed = [argparse.Namespace, collections.OrderedDict,
               collections.defaultdict]
    try:
        import numpy as np
        allowed += [np.dtype, np.ndarray, np.core.multiarray._reconstruct,
                    np.core.multiarray.scalar, type(np.dtype('float64')),
                    type(np.dtype('int64')), type(np.dtype('float32'))]
    except Exception:  # numpy layout differs: plain weights still load
        pass
    try:
        from mmengine.logging import HistoryBuffer
        allowed.append(HistoryBuffer)
    except ImportError:
        pass
    try:
        from mmengine.config import ConfigDict
        allowed.append(ConfigDict)
    except ImportError:
        pass
    return allowed


def safe_torch_load(path, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` plus a short allow-list.

    Raises ``FileNotFoundError`` / ``RuntimeError`` naming the file when it is
    missing, truncated or not a checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except Exception as err:  # truncated zip, pickle of unknown classes...
        raise RuntimeError(
            f'Cannot read checkpoint {path!r} ({os.path.getsize(path)} bytes): '
            f'{type(err).__name__}: {str(err).splitlines()[0][:300]}. '
            'Is the file complete and a PyTorch checkpoint?') from err


def unwrap_state_dict(checkpoint, prefer_ema=False):
    """The flat tensor dict inside an official or mmengine checkpoint.

    Understands the wrappers ``state_dict`` (mmengine), ``model`` /
    ``model_ema`` (TinyViM, timm) and ``net`` / ``net_E`` (MobileMamba), and
    strips DataParallel's ``module.`` prefix.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError('A checkpoint must be a dict of tensors or a dict '
                        f'wrapping one, got {type(checkpoint).__name__}')
    keys = WRAPPER_KEYS
    if prefer_ema:
        keys = ('model_ema', 'net_E') + keys
    state = checkpoint
    for key in keys:
        if isinstance(checkpoint.get(key), dict):
            state = checkpoint[key]
            break
    if any(not torch.is_tensor(v) for v in state.values()):
        bad = [k for k, v in state.items() if not torch.is_tensor(v)][:5]
        raise TypeError('Checkpoint does not hold a state dict: no wrapper '
                        f'among {WRAPPER_KEYS} and non-tensor entries {bad}')
    return collections.OrderedDict(
        (k[7:] if k.startswith('module.') else k, v)
        for k, v in state.items())


def strict_load(module, state_dict, what='checkpoint', allow_missing=()):
    """Load ``state_dict`` into ``module``; any key or shape problem raises.

    ``allow_missing``: keys the caller knows the source cannot have (they keep
    their initialisation); everything else must match exactly.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and k not in allow_missing]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs model '
              f'{tuple(own[k].shape)}'
              for k, v in state_dict.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {_short(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: '
                        f'{_short(unexpected)}')
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: {_short(shapes)}')
    if problems:
        raise RuntimeError(
            f'{what} does not fit {type(module).__name__} '
            f'({getattr(module, "arch_name", "custom")}): ' +
            '; '.join(problems) +
            '. Is it a checkpoint of this family and variant?')
    module.load_state_dict(state_dict, strict=False)


def _short(items, n=8):
    items = list(items)
    more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
    return ', '.join(items[:n]) + more
