"""Checks of a config and its ``--cfg-options`` before a run starts.

mmengine adds whatever ``--cfg-options`` names to the config, and a runner
reads only the keys it knows: a misspelt top-level key (``optim_wraper``) is
added and never read, and the run trains with the setting the user meant to
change. A misspelt argument of a hook or optimizer fails only when the
component is built (a ``TypeError`` deep in the runner, for
``CheckpointHook`` at the first save). The tools call :func:`load_config`,
which refuses both with the close valid names before anything is built, and
parse ``--cfg-options`` with :class:`CfgOptionsAction`, which refuses a pair
without ``=`` in one line.
"""
import difflib
import inspect
import math
import numbers
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.registry import (HOOKS, MODELS, OPTIM_WRAPPERS, OPTIMIZERS,
                               RUNNERS, DefaultScope)
from mmengine.runner import Runner

TASKS = {'mmdet': 'detection', 'mmseg': 'segmentation',
         'mmpretrain': 'classification'}

# Top-level keys read besides the runner's constructor arguments: by
# mmengine's Runner (model_wrapper_cfg ... compile), mmengine's Config
# (custom_imports) and the tools (runner_type, tta_model, tta_pipeline).
OTHER_TOP_LEVEL_KEYS = ('model_wrapper_cfg', 'find_unused_parameters',
                        'sync_bn', 'activation_checkpointing',
                        'efficient_conv_bn_eval', 'compile', 'custom_imports',
                        'runner_type', 'tta_model', 'tta_pipeline')
# optim_wrapper keys that the optimizer-wrapper builder takes out before the
# wrapper class sees the rest
OPTIM_WRAPPER_BUILDER_KEYS = ('type', 'optimizer', 'constructor',
                              'paramwise_cfg')
# Runner.save_checkpoint arguments that CheckpointHook passes itself; its
# **kwargs go to save_checkpoint too
CHECKPOINT_HOOK_PASSED = ('self', 'out_dir', 'filename', 'meta')


class ConfigCheckError(ValueError):
    """A config key or component argument that nothing would read, or a
    setting that would make the run meaningless."""


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` refusing, through the parser's usage error,
    an item without ``=`` (mmengine raises a bare ``ValueError: not enough
    values to unpack``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for value in values:
            if '=' not in value:
                parser.error(
                    f'{option_string}: {value!r} is not a KEY=VALUE pair. '
                    f'Write each override as KEY=VALUE, e.g. {option_string} '
                    'train_dataloader.batch_size=2 '
                    '"model.backbone.arch=\'b\'"; quote a value with spaces '
                    '(a list such as "param_scheduler.1.milestones=[8, 11]") '
                    'so that the shell keeps it one argument.')
        super().__call__(parser, namespace, values, option_string)


def _close(name, valid):
    matches = difflib.get_close_matches(str(name), sorted(valid), n=3,
                                        cutoff=0.6)
    return (f'Did you mean {" or ".join(repr(m) for m in matches)}? '
            if matches else '')


def runner_keys(cfg):
    """The top-level keys a run of ``cfg`` reads: its runner's constructor
    arguments (mmengine's ``Runner``, or ``runner_type``) and
    :data:`OTHER_TOP_LEVEL_KEYS`."""
    runner = Runner
    runner_type = cfg.get('runner_type')
    if isinstance(runner_type, str):
        runner = RUNNERS.get(runner_type) or Runner
    elif inspect.isclass(runner_type):
        runner = runner_type
    names = {name for name in inspect.signature(runner.__init__).parameters
             if name not in ('self', 'cfg')}
    return names | set(OTHER_TOP_LEVEL_KEYS)


def check_cfg_options(cfg, cfg_options, config_path='the config'):
    """Raise :class:`ConfigCheckError` for an override whose top-level key
    is neither in ``cfg`` nor read by the runner (it would be added and
    never used)."""
    valid = set(cfg.keys()) | runner_keys(cfg)
    for key in cfg_options:
        top = key.split('.')[0]
        if top in valid:
            continue
        raise ConfigCheckError(
            f'--cfg-options {key}: {top!r} is not a top-level key of '
            f'{config_path} nor one the runner reads, so the value would be '
            f'added and never used. {_close(top, valid)}Valid top-level '
            f'keys: {", ".join(sorted(valid))}.')


def accepted_arguments(cls):
    """The keyword arguments the constructor of ``cls`` takes, or None where
    that is not known (``**kwargs`` that no base class's constructor names).

    A ``**kwargs`` passed on to the base class is followed through the MRO;
    ``CheckpointHook``'s go to ``Runner.save_checkpoint``."""
    names, open_ended = set(), False
    for klass in cls.__mro__:
        if klass is object:
            break
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        names.discard('self')
        open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters)
        if not open_ended:
            return names
        if klass is CheckpointHook:
            saved = inspect.signature(Runner.save_checkpoint).parameters
            return names | (set(saved) - set(CHECKPOINT_HOOK_PASSED))
    return None if open_ended else names


def _component_class(registry, type_, scope):
    if inspect.isclass(type_):
        return type_
    with registry.switch_scope_and_registry(scope) as scoped:
        return scoped.get(type_)


def _check_arguments(where, component, registry, scope, extra=(),
                     ignore=(), set_by_builder=()):
    """Raise for a key of the ``component`` config (``type`` and its
    arguments) that its registered class does not take."""
    if not isinstance(component, dict) or 'type' not in component:
        return
    cls = _component_class(registry, component['type'], scope)
    if cls is None:
        known = set(registry.module_dict)
        with registry.switch_scope_and_registry(scope) as scoped:
            known |= set(scoped.module_dict)
        raise ConfigCheckError(
            f'{where}: type {component["type"]!r} is not a registered '
            f'{registry.name} (default_scope {scope!r}). '
            f'{_close(component["type"], known)}Check the spelling, or '
            'that custom_imports imports the module that registers it.')
    accepted = accepted_arguments(cls)
    if issubclass(cls, EMAHook):
        # EMAHook's **kwargs go to its averaged model, ema_type
        ema = _component_class(MODELS, component.get(
            'ema_type', 'ExponentialMovingAverage'), scope)
        ema_arguments = accepted_arguments(ema) if ema else None
        accepted = (None if ema_arguments is None else
                    set(inspect.signature(cls.__init__).parameters) - {
                        'self', 'kwargs'} | ema_arguments - {'model'})
    if accepted is None:
        return
    # '_scope_': the registry scope mmengine's pkg:: bases tag a dict with
    accepted = (accepted | {'type', '_scope_', *extra}) - set(set_by_builder)
    for key in component:
        if key in accepted or key in ignore:
            continue
        raise ConfigCheckError(
            f'{where}: {cls.__name__} has no argument {key!r}. '
            f'{_close(key, accepted)}{cls.__name__} takes: '
            f'{", ".join(sorted(accepted - {"type", "_scope_"}))}. Fix the key in the '
            'config or in --cfg-options.')


def check_components(cfg):
    """Raise :class:`ConfigCheckError` for a hook, optimizer wrapper or
    optimizer argument that the registered class does not take (checked
    against its constructor's signature)."""
    scope = cfg.get('default_scope') or DefaultScope.get_current_instance()
    scope = scope if isinstance(scope, str) else 'mmengine'
    for name, hook in (cfg.get('default_hooks') or {}).items():
        _check_arguments(f'default_hooks.{name}', hook, HOOKS, scope)
    for index, hook in enumerate(cfg.get('custom_hooks') or []):
        # Runner.register_hook takes 'priority' out of each hook config
        _check_arguments(f'custom_hooks.{index}', hook, HOOKS, scope,
                         extra=('priority', ))
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict) and 'type' in wrapper:
        _check_arguments('optim_wrapper', wrapper, OPTIM_WRAPPERS, scope,
                         ignore=OPTIM_WRAPPER_BUILDER_KEYS)
        # the builder passes the model's parameters as 'params'
        _check_arguments('optim_wrapper.optimizer', wrapper.get('optimizer'),
                         OPTIMIZERS, scope, set_by_builder=('params', ))


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_normalisation(cfg):
    """Raise :class:`ConfigCheckError` for a data preprocessor whose ``std``
    has an entry that is not a finite number > 0, or whose ``mean`` has one
    that is not a finite number.

    The preprocessor computes ``(image - mean) / std`` per channel: a zero
    std makes every input of that channel inf (NaN where the pixel equals
    the mean, e.g. a constant image), a non-finite mean or std makes it NaN,
    and training then runs on NaN from the first batch; a negative std
    inverts the images the pretrained backbone was trained on. The preprocessor
    checked is the one the model is built with: ``model.data_preprocessor``,
    else the top-level ``data_preprocessor`` (mmengine's Runner gives it to
    a model without one)."""
    model = cfg.get('model')
    where, preprocessor = 'model.data_preprocessor', None
    if isinstance(model, dict):
        preprocessor = model.get('data_preprocessor')
    if preprocessor is None:
        where, preprocessor = 'data_preprocessor', cfg.get('data_preprocessor')
    if not isinstance(preprocessor, dict):
        return
    rules = (('std', lambda v: _real(v) and math.isfinite(v) and v > 0,
              ('a finite number > 0', 'finite numbers > 0'),
              'divides each channel by its std: a zero std makes the channel '
              'inf or NaN (all NaN for a constant image), a non-finite one '
              'NaN, a negative one inverts it, and training would run on NaN '
              'or on inverted images',
              '[58.395, 57.12, 57.375]'),
             ('mean', lambda v: _real(v) and math.isfinite(v),
              ('a finite number', 'finite numbers'),
              'subtracts each channel\'s mean: a non-finite one makes the '
              'channel NaN or inf, and training would run on NaN',
              '[123.675, 116.28, 103.53]'))
    for key, valid, (one, many), effect, example in rules:
        values = preprocessor.get(key)
        if values is None:
            continue
        entries = (list(values) if isinstance(values, (list, tuple)) else
                   [values])
        bad = [f'{index} ({value!r})' for index, value in enumerate(entries)
               if not valid(value)]
        if not bad:
            continue
        what = (f'entry {bad[0]} is not {one}' if len(bad) == 1 else
                f'entries {", ".join(bad)} are not {many}')
        raise ConfigCheckError(
            f'{where}.{key}={values!r}: {what}. The data preprocessor '
            f'{effect}. Give '
            f'{one} per image channel, in pixel units (ImageNet statistics '
            f'of 0-255 images: {key}={example}), or leave out both mean and '
            'std to feed the pixels unnormalised.')


def check_work_dir(path):
    """Raise :class:`ConfigCheckError` when ``path`` (the work_dir) or a
    folder above it exists as something other than a directory."""
    probe = osp.abspath(path)
    while not osp.exists(probe):
        parent = osp.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if osp.isdir(probe):
        return
    where = ('is a file' if probe == osp.abspath(path) else
             f'is inside {probe}, which is a file')
    raise ConfigCheckError(
        f'work_dir {path} {where}, not a directory: the run writes its logs '
        'and checkpoints there. Give --work-dir a directory (it is created '
        'if absent), or move the file away.')


def load_config(path, cfg_options=None):
    """The config of ``path`` with ``cfg_options`` merged, checked: the file
    exists, every override's top-level key is read by a run
    (:func:`check_cfg_options`), the hook, optimizer wrapper and optimizer
    arguments are their classes' (:func:`check_components`), and the
    ``default_scope`` is one of :data:`TASKS`, the data preprocessor's mean
    and std make finite inputs (:func:`check_normalisation`)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        check_cfg_options(cfg, cfg_options, path)
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(
            f'{path}: default_scope={scope!r}; this tool runs configs of '
            f'{", ".join(TASKS)} (detection, segmentation, classification)')
    check_components(cfg)
    check_normalisation(cfg)
    return cfg
