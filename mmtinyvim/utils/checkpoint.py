"""Loading foreign and mmengine checkpoints strictly and safely.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and that
default stays on here. Two kinds of checkpoint hold more than tensors:

* official TinyViM checkpoints hold an ``argparse.Namespace``;
* mmengine 0.10.7 checkpoints hold the message hub: ``HistoryBuffer`` objects
  with numpy arrays inside, numpy scalars, and ``getattr(HistoryBuffer,
  'mean')``-style references to the buffer's statistics methods.

:data:`SAFE_GLOBALS` allows exactly those, while :func:`safe_torch_load`'s
``torch.load`` runs: the load sits inside torch's own
``torch.serialization.safe_globals`` context, entered by the first of
concurrent project loads and left by the last, so that one thread's load
ending never takes the list away from another's. Nothing of torch is
replaced; the user's ``torch.serialization.add_safe_globals`` entries stay
as they were. While a project load runs, torch's list is process-wide, so a
plain ``torch.load`` in another thread at that moment also accepts these
stand-ins (they are benign by construction, see below).
``getattr`` itself is never allowed (it would reach any attribute of any
allowed object); a stand-in that resolves only the four statistics methods
takes its place.

``HistoryBuffer`` and ``argparse.Namespace`` are rebuilt by stand-ins
(:class:`_RebuiltHistoryBuffer`, :class:`_RebuiltNamespace`): their state is
checked field by field and the object is made by the class's constructor, so
nothing in a checkpoint reaches class-level state (mmengine's own
``HistoryBuffer.__setstate__`` writes the pickled ``statistics_methods`` into
the class-wide ``_statistics_methods``).

:func:`use_safe_loader_in_mmengine` (an explicit call: importing the
package changes nothing of mmengine) makes every scheme of mmengine's
``CheckpointLoader`` (local paths, ``http(s)://``, ``open-mmlab://``,
``torchvision://``, ``mmcls://``, ``s3://``/``petrel://``, ``pavi://``) fetch
the file as mmengine does and load it through :func:`safe_torch_load`; our
``tools/train.py`` and ``tools/test.py`` call it, and
:class:`mmtinyvim.engine.SafeLoadingHook` does it for one run of any
toolbox's own tools.
"""
import argparse
import collections
import contextlib
import os
import pickle
import re
import threading
import zipfile

import numpy as np
import torch

from ..stack import importable

if importable('mmengine'):
    from mmengine.logging import HistoryBuffer
else:  # torch alone: no checkpoint that loads here holds mmengine objects
    HistoryBuffer = None

# wrappers official training scripts put around the weights, in priority order
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'net', 'net_E')

# HistoryBuffer pickles these as getattr(HistoryBuffer, name)
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL_2 = b'\x80\x02'  # torch's legacy (non-zip) format


def _history_buffer_statistic(owner, name):
    """Stand-in for ``builtins.getattr`` while unpickling: resolves the
    statistics methods of ``HistoryBuffer`` and refuses everything else."""
    if (owner in (HistoryBuffer, _RebuiltHistoryBuffer)
            and name in _HISTORY_BUFFER_STATISTICS):
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, '_pickled_as', None) or getattr(
        owner, '__name__', type(owner).__name__)
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


def _refuse(what, detail):
    raise pickle.UnpicklingError(f'{what} with {detail} is refused')


class _RebuiltHistoryBuffer(HistoryBuffer or object):
    """Unpickles as ``mmengine.logging.HistoryBuffer``: accepts the instance
    fields ``max_length``, ``_log_history``, ``_count_history`` (and ignores
    the pickled ``statistics_methods``, which must be the four defaults),
    then builds a ``HistoryBuffer`` with its constructor."""

    _pickled_as = 'HistoryBuffer'
    _FIELDS = {'max_length', '_log_history', '_count_history',
               'statistics_methods'}

    def __setstate__(self, state):
        if not isinstance(state, dict) or set(state) - self._FIELDS:
            extra = (sorted(map(str, set(state) - self._FIELDS))
                     if isinstance(state, dict) else type(state).__name__)
            _refuse('HistoryBuffer state', f'fields {extra}')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or any(
                methods.get(name, getattr(HistoryBuffer, name))
                is not getattr(HistoryBuffer, name)
                for name in _HISTORY_BUFFER_STATISTICS) or set(methods) - set(
                    _HISTORY_BUFFER_STATISTICS):
            _refuse('HistoryBuffer state',
                    'statistics_methods other than min, max, current, mean')
        max_length = state.get('max_length', 1000000)
        logs = state.get('_log_history', np.array([]))
        counts = state.get('_count_history', np.array([]))
        if (type(max_length) is not int or max_length < 1
                or not all(isinstance(a, np.ndarray) and a.ndim == 1
                           and a.dtype.kind in 'biuf' for a in (logs, counts))
                or len(logs) != len(counts)):
            _refuse('HistoryBuffer state', 'malformed fields')
        self.__class__ = HistoryBuffer
        HistoryBuffer.__init__(self, logs.copy(), counts.copy(), max_length)


class _RebuiltNamespace(argparse.Namespace):
    """Unpickles as ``argparse.Namespace``: a dict of plain attribute
    names only."""

    _pickled_as = 'Namespace'

    def __setstate__(self, state):
        if not isinstance(state, dict) or any(
                not isinstance(k, str) or k.startswith('__') for k in state):
            _refuse('Namespace state', 'names that are not plain attributes')
        self.__class__ = argparse.Namespace
        argparse.Namespace.__init__(self, **state)


SAFE_GLOBALS = (
    [(_RebuiltNamespace, 'argparse.Namespace')] +
    ([(_RebuiltHistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
      (_history_buffer_statistic, 'builtins.getattr')]
     if HistoryBuffer is not None else []) + _numpy_safe_globals())

_allow_lock = threading.Lock()
_allow_users = 0  # project loads now inside the allow-list context
_allow_context = None


def _enter_allow_list() -> None:
    global _allow_users, _allow_context
    with _allow_lock:
        if _allow_users == 0:
            _allow_context = torch.serialization.safe_globals(SAFE_GLOBALS)
            _allow_context.__enter__()
        _allow_users += 1


def _leave_allow_list() -> None:
    global _allow_users, _allow_context
    with _allow_lock:
        _allow_users -= 1
        if _allow_users == 0:
            _allow_context.__exit__(None, None, None)
            _allow_context = None


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
    rebuilt = re.search(r'(\w+) state with (.+?) is refused', str(err))
    if rebuilt:
        return (f'its {rebuilt.group(1)} object has {rebuilt.group(2)}, '
                'which a checkpoint written by mmengine or the official '
                'scripts never has (a crafted file?)')
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
    _enter_allow_list()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle of unknown classes...
        raise RuntimeError(f'Cannot load checkpoint {path!r}: '
                           f'{_describe_load_error(path, err)}') from err
    finally:
        _leave_allow_list()


def load_from_local(filename, map_location):
    """mmengine ``CheckpointLoader`` scheme for local paths, through
    :func:`safe_torch_load` (the name keeps mmengine's log line, which prints
    the loader name after ``load_from_``)."""
    return safe_torch_load(filename, map_location=map_location)


def download_checkpoint(url, model_dir=None, progress=False):
    """The local copy of ``url`` in mmengine's cache
    (``$TORCH_HOME/checkpoints``, as ``mmengine``'s ``load_url``), downloaded
    on first use through a temporary file and a rename."""
    from urllib.parse import urlparse

    from torch.hub import _get_torch_home, download_url_to_file
    if model_dir is None:
        model_dir = os.path.join(_get_torch_home(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir, os.path.basename(urlparse(url).path))
    if not os.path.exists(cached):
        download_url_to_file(url, cached, None, progress=progress)
    return cached


def load_from_http(filename, map_location=None, model_dir=None):
    """``http://`` / ``https://``: downloaded to mmengine's cache (local rank
    0 first, as mmengine does), then :func:`safe_torch_load`."""
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = download_checkpoint(filename, model_dir)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = download_checkpoint(filename, model_dir)
    return safe_torch_load(cached, map_location=map_location)


def load_from_torchvision(filename, map_location=None):
    """``torchvision://NAME`` (``modelzoo://NAME``): torchvision's URL for
    NAME, through :func:`load_from_http`."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    return load_from_http(get_torchvision_models()[name],
                          map_location=map_location)


def load_from_openmmlab(filename, map_location=None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: resolved by mmengine's
    model list (a URL, or a path under ``MMENGINE_HOME``), then loaded
    through :func:`safe_torch_load`."""
    from mmengine.runner.checkpoint import (_get_mmengine_home,
                                            get_deprecated_model_names,
                                            get_external_models)
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    return safe_torch_load(os.path.join(_get_mmengine_home(), url),
                           map_location=map_location)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://NAME``: mmcls's URL for NAME, then mmengine's key
    renaming."""
    from mmengine.runner.checkpoint import (_process_mmcls_checkpoint,
                                            get_mmcls_models)
    checkpoint = load_from_http(get_mmcls_models()[filename[8:]],
                                map_location=map_location)
    return _process_mmcls_checkpoint(checkpoint)


def _load_bytes(data, name, map_location):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, os.path.basename(name) or 'checkpoint.pth')
        with open(path, 'wb') as f:
            f.write(data)
        return safe_torch_load(path, map_location=map_location)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """``s3://`` / ``petrel://``: read through mmengine's file backend, then
    :func:`safe_torch_load`."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args={
        'backend': backend}).get(filename)
    return _load_bytes(data, filename, map_location)


def load_from_pavi(filename, map_location=None):
    """``pavi://``: downloaded by pavi's model cloud, then
    :func:`safe_torch_load`."""
    import tempfile
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[7:])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, model.name)
        model.download(path)
        return safe_torch_load(path, map_location=map_location)


# every scheme mmengine 0.10.7's CheckpointLoader knows, and ours
SAFE_SCHEMES = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
    'pavi://': load_from_pavi,
}


def use_safe_loader_in_mmengine() -> dict:
    """Route every scheme of mmengine's checkpoint loading (``Runner.resume``,
    ``load_from``, ``init_cfg=dict(type='Pretrained')``,
    ``mmengine.runner.load_checkpoint``) through :func:`safe_torch_load`.

    An explicit opt-in: importing :mod:`mmtinyvim` leaves mmengine's loaders
    alone. Our ``tools/train.py`` and ``tools/test.py`` call it;
    ``custom_hooks=[dict(type='SafeLoadingHook')]`` does it for the run of
    any toolbox's own tools (and undoes it after). Idempotent. Returns the
    loaders it replaced, ``{prefix: loader}``, for
    :func:`restore_mmengine_loaders`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    # mmengine has no public way to read a scheme's loader back
    previous = dict(CheckpointLoader._schemes)
    for prefixes, loader in SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader,
                                         force=True)
    return previous


def restore_mmengine_loaders(previous: dict) -> None:
    """Put back the loaders :func:`use_safe_loader_in_mmengine` returned."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefix, loader in previous.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader,
                                         force=True)


@contextlib.contextmanager
def safe_loading_in_mmengine():
    """:func:`use_safe_loader_in_mmengine` for the ``with`` block only:
    mmengine's loaders as they were are put back when it ends, also on an
    error, so that a tool's ``main`` called in-process (a test, a notebook)
    leaves mmengine as it found it."""
    previous = use_safe_loader_in_mmengine()
    try:
        yield
    finally:
        restore_mmengine_loaders(previous)


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


class NonFiniteWeightsError(ValueError):
    """A checkpoint holds NaN or infinite weights."""


def nonfinite_tensors(state_dict):
    """``(name, NaN count, inf count)`` of every floating-point tensor of
    ``state_dict`` holding a NaN or an infinity, in the dict's order."""
    found = []
    for name, value in state_dict.items():
        if not (torch.is_tensor(value) and
                (value.is_floating_point() or value.is_complex())):
            continue
        if bool(torch.isfinite(value).all()):
            continue
        found.append((name, int(torch.isnan(value).sum()),
                      int(torch.isinf(value).sum())))
    return found


def require_finite(state_dict, what='checkpoint'):
    """Raise :class:`NonFiniteWeightsError` naming the tensors when
    ``state_dict`` holds a NaN or an infinity.

    Such weights load without a word and make every output NaN: an
    evaluation reports 0 accuracy, an ONNX export writes a broken model, a
    training run fails later at its first checkpoint. Every place of the
    package and its tools that loads weights calls this once, before the
    weights are used: :func:`strict_load` (``init_cfg`` Pretrained, the
    distillation teacher, ``tools/deployment/pytorch2onnx.py``) and
    ``tools/test.py``.
    """
    found = nonfinite_tensors(state_dict)
    if not found:
        return
    shown = [f'{name} ({nan} NaN, {inf} inf of '
             f'{state_dict[name].numel()})' for name, nan, inf in found]
    raise NonFiniteWeightsError(
        f'{what} holds non-finite weights (NaN or inf) in {len(found)} of '
        f'{len(state_dict)} entries: {_short(shown)}. A model with them '
        'outputs NaN. Was it saved after the training diverged, or is the '
        'file damaged? Use a checkpoint saved before the loss became NaN '
        '(an earlier epoch_*/iter_* file). Nothing was loaded.')


def strict_load(module, state_dict, what='checkpoint', allow_missing=()):
    """Load ``state_dict`` into ``module``; any key or shape problem, or a
    non-finite weight (:func:`require_finite`), raises before a single
    tensor is copied.

    ``allow_missing``: keys the caller knows the source cannot have (they keep
    their initialisation); everything else must match exactly.
    """
    require_fit(module, state_dict, what, allow_missing)
    require_finite(state_dict, what)
    module.load_state_dict(state_dict, strict=False)


class ResumeCheckpointError(ValueError):
    """A checkpoint given to resume a training that is not a training state
    of the model being trained."""


# what mmengine's Runner.resume reads: meta['epoch'] and meta['iter'], the
# message hub and the model's weights
_RESUME_META = ('epoch', 'iter')
# first key components -> what kind of model the weights are of
_MODEL_KINDS = ((('rpn_head', 'roi_head'), 'a two-stage detector (e.g. '
                 'Mask R-CNN)'),
                (('bbox_head', ), 'a one-stage detector (e.g. RetinaNet, '
                 'SSD)'),
                (('decode_head', ), 'a segmentor'),
                (('head', ), 'a classifier'))


def model_kind(state_dict) -> str:
    """What kind of model a state dict's key names are of, in words."""
    tops = {str(k).split('.')[0] for k in state_dict}
    for parts, kind in _MODEL_KINDS:
        if 'backbone' in tops and tops & set(parts):
            return kind
    if 'backbone' in tops:
        return 'a model with a backbone'
    return "a network on its own (no key starts with 'backbone.': " \
        'a backbone?)'


def describe_checkpoint(checkpoint) -> str:
    """What a loaded checkpoint file holds, in a phrase: its entries, its
    weights' first keys and the kind of model they are of, and the training
    run that wrote it (mmengine's ``meta['experiment_name']``)."""
    if not isinstance(checkpoint, dict):
        return f'a {type(checkpoint).__name__}, not a dict'
    if checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        return (f'a bare state dict of {len(checkpoint)} tensors (keys '
                f'{_short(list(checkpoint), 3)}): the weights of '
                f'{model_kind(checkpoint)}')
    entries = _short([repr(k) for k in checkpoint], 8)
    try:
        state = unwrap_state_dict(checkpoint)
    except TypeError:
        return f'the entries {entries} and no weights'
    meta = checkpoint.get('meta')
    run = (meta.get('experiment_name') if isinstance(meta, dict) else None)
    return (f'the entries {entries}; its {len(state)} weights (keys '
            f'{_short(list(state), 3)}) are of {model_kind(state)}' +
            (f', saved by the training run {run}' if run else ''))


def resume_problem(checkpoint, model):
    """Why mmengine's ``Runner.resume`` cannot continue training ``model``
    from ``checkpoint`` (a loaded file), in a phrase, or None when it can:
    the file must hold the training state mmengine writes (``meta`` with
    ``epoch`` and ``iter``, ``message_hub``, ``state_dict``) and weights
    that fit the model exactly (:func:`state_dict_problems`)."""
    missing = []
    if not isinstance(checkpoint, dict):
        return 'it is not a dict'
    meta = checkpoint.get('meta')
    if not isinstance(meta, dict):
        missing.append("'meta'")
    else:
        missing += [f"meta[{k!r}]" for k in _RESUME_META if k not in meta]
    missing += [repr(k) for k in ('message_hub', 'state_dict')
                if k not in checkpoint]
    if missing:
        return (f'it holds {describe_checkpoint(checkpoint)}, without the '
                f'training state resuming reads ({", ".join(missing)} '
                'missing)')
    state = checkpoint['state_dict']
    if not isinstance(state, dict):
        return f"its 'state_dict' is a {type(state).__name__}, not a dict"
    state = collections.OrderedDict(
        (k[7:] if k.startswith('module.') else k, v)
        for k, v in state.items())
    problems = state_dict_problems(model, state)
    if problems:
        return (f'it holds {describe_checkpoint(checkpoint)}, and they do '
                f'not fit {type(model).__name__}, the model this config '
                f'builds: {"; ".join(problems)}')
    return None


def check_resume_checkpoint(path, model, config='the config'):
    """Raise :class:`ResumeCheckpointError` (one message: what the file
    holds, what resuming needs, how to start from its weights instead)
    when the checkpoint at ``path`` cannot resume a training of ``model``
    (:func:`resume_problem`). Before: mmengine's ``KeyError: 'epoch'`` for a
    file without the training state, and a non-strict load with a warning
    for another model's weights."""
    problem = resume_problem(safe_torch_load(path), model)
    if problem is None:
        return
    raise ResumeCheckpointError(
        f'Cannot resume {config} from {path}: {problem}. Resuming continues '
        'a training run of this config from a checkpoint that run wrote '
        '(iter_*.pth / epoch_*.pth in its work_dir). To start a new '
        'training from these weights instead, leave out --resume (and '
        'resume=True) and give --cfg-options load_from=PATH (the weights '
        'whose names and shapes match the model are loaded, the rest keep '
        'their initialisation), or, for backbone weights, '
        'model.backbone.init_cfg.type=Pretrained '
        'model.backbone.init_cfg.checkpoint=PATH (loaded strictly; add '
        'model.backbone.init_cfg.prefix=backbone. for a whole model\'s '
        'file).')


def _short(items, n=8):
    items = list(items)
    more = f' ... (+{len(items) - n} more)' if len(items) > n else ''
    return ', '.join(items[:n]) + more
