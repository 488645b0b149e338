"""Loading foreign and mmengine checkpoints strictly and safely.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and that
default stays on here. Two kinds of checkpoint hold more than tensors:

* official TinyViM checkpoints hold an ``argparse.Namespace``;
* mmengine 0.10.7 checkpoints hold the message hub: ``HistoryBuffer`` objects
  with numpy arrays inside, numpy scalars, and ``getattr(HistoryBuffer,
  'mean')``-style references to the buffer's statistics methods.

:data:`SAFE_GLOBALS` allows exactly those, and only for the duration of one
load (``torch.serialization.safe_globals``), never process-wide: other code's
``torch.load`` calls keep torch's own allow-list. ``getattr`` itself is never
allowed (it would reach any attribute of any allowed object); a stand-in that
resolves only the four statistics methods takes its place.
:func:`use_safe_loader_in_mmengine` makes mmengine's local-file loader (resume,
``load_from``, ``tools/test.py``) go through the same path.
"""
import argparse
import collections
import os
import pickle
import re
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# wrappers official training scripts put around the weights, in priority order
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'net', 'net_E')

# HistoryBuffer pickles these as getattr(HistoryBuffer, name)
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL_2 = b'\x80\x02'  # torch's legacy (non-zip) format


def _history_buffer_statistic(owner, name):
    """Stand-in for ``builtins.getattr`` while unpickling: resolves the
    statistics methods of ``HistoryBuffer`` and refuses everything else."""
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, '__name__', type(owner).__name__)
    raise pickle.UnpicklingError(f'getattr({owner_name}, {name!r}) is refused')


def _numpy_safe_globals():
    # numpy 2 pickles name numpy._core, numpy 1 pickles numpy.core: the same
    # two functions are allowed under both names
    multiarray = np._core.multiarray
    allowed = [np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    # a dtype unpickles through its class's __setstate__, so the concrete
    # dtype classes (numpy.dtypes.Float64DType, ...) of plain numbers and bools
    allowed += sorted({type(np.dtype(code)) for code in '?bhilqBHILQefdgFDG'},
                      key=lambda cls: cls.__name__)
    return allowed


SAFE_GLOBALS = (
    [argparse.Namespace, HistoryBuffer,
     (_history_buffer_statistic, 'builtins.getattr')] + _numpy_safe_globals())


def _describe_load_error(path, err):
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if size == 0:
        return 'the file is empty (0 bytes)'
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        return (f'the file is truncated ({size} bytes): it starts like a '
                'PyTorch zip checkpoint but its end-of-archive record is '
                'missing (an interrupted save or download?)')
    # torch words it 'unsupported GLOBAL x' for callables and
    # 'Unsupported global: GLOBAL x' for classes
    unsupported = re.search(r'unsupported (?:global: )?GLOBAL (\S+)',
                            str(err), re.I)
    if unsupported:
        return (f'it contains the Python object {unsupported.group(1)}, '
                "which is not on mmtinyvim's allow-list of benign classes "
                '(mmtinyvim.utils.checkpoint.SAFE_GLOBALS); loading it could '
                'run code from the file. If you trust the file, re-save its '
                'tensors with torch.save(state_dict)')
    refused = re.search(r'getattr\([^)]*\) is refused', str(err))
    if refused:
        return (f'unpickling it calls {refused.group(0)[:-len(" is refused")]}'
                "; only the statistics methods of mmengine's HistoryBuffer "
                f'{_HISTORY_BUFFER_STATISTICS} may be looked up')
    if head != _ZIP_MAGIC and not head.startswith(_PICKLE_PROTOCOL_2):
        return (f'it is not a PyTorch checkpoint ({size} bytes starting with '
                f'{head!r}: neither a zip archive nor a legacy pickle; a '
                'saved error page?)')
    detail = re.search(r'WeightsUnpickler error: (.+)', str(err))
    detail = detail.group(1) if detail else (str(err).splitlines() or [''])[0]
    return f'{type(err).__name__}: {detail[:300] or "no detail"}'


def safe_torch_load(path, map_location='cpu'):
    """``torch.load(path, weights_only=True)`` with :data:`SAFE_GLOBALS`.

    Raises ``FileNotFoundError`` when the file is missing and ``RuntimeError``
    saying whether it is empty, truncated, not a checkpoint, or holds an
    object outside the allow-list.
    """
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except Exception as err:  # truncated zip, pickle of unknown classes...
        raise RuntimeError(f'Cannot load checkpoint {path!r}: '
                           f'{_describe_load_error(path, err)}') from err


def load_from_local(filename, map_location):
    """mmengine ``CheckpointLoader`` scheme for local paths, through
    :func:`safe_torch_load` (the name keeps mmengine's log line, which prints
    the loader name after ``load_from_``)."""
    return safe_torch_load(filename, map_location=map_location)


def use_safe_loader_in_mmengine():
    """Route mmengine's local-file checkpoint loading (``Runner.resume``,
    ``load_from``, ``mmengine.runner.load_checkpoint``) through
    :func:`safe_torch_load`. Called once when :mod:`mmtinyvim` is imported."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)


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
    if not state:
        raise TypeError('Checkpoint holds no tensors (an empty state dict)')
    if any(not torch.is_tensor(v) for v in state.values()):
        bad = [k for k, v in state.items() if not torch.is_tensor(v)][:5]
        raise TypeError('Checkpoint does not hold a state dict: no wrapper '
                        f'among {WRAPPER_KEYS} and non-tensor entries {bad}')
    return collections.OrderedDict(
        (k[7:] if k.startswith('module.') else k, v)
        for k, v in state.items())


def state_dict_problems(module, state_dict, allow_missing=()):
    """What keeps ``state_dict`` from loading strictly into ``module``: a
    list of lines (missing keys, unexpected keys, shape mismatches), empty
    when it fits."""
    own = module.state_dict()
    missing = [k for k in own
               if k not in state_dict and k not in allow_missing]
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
    return problems


def require_fit(module, state_dict, what='checkpoint', allow_missing=()):
    """Raise ``RuntimeError`` naming every key and shape problem when
    ``state_dict`` does not load strictly into ``module``; load nothing."""
    problems = state_dict_problems(module, state_dict, allow_missing)
    if problems:
        name = type(module).__name__
        arch = getattr(module, 'arch_name', None)
        raise RuntimeError(
            f'{what} does not fit {name}{f" ({arch})" if arch else ""}: ' +
            '; '.join(problems) +
            '. Is it a checkpoint of this family and variant? Nothing was '
            'loaded.')


def strict_load(module, state_dict, what='checkpoint', allow_missing=()):
    """Load ``state_dict`` into ``module``; any key or shape problem raises
    before a single tensor is copied.

    ``allow_missing``: keys the caller knows the source cannot have (they keep
    their initialisation); everything else must match exactly.
    """
    require_fit(module, state_dict, what, allow_missing)
    module.load_state_dict(state_dict, strict=False)


def _short(items, n=8):
    items = list(items)
    more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
    return ', '.join(items[:n]) + more
