"""The safety defaults of the shipped configs, given to any config that
``tools/train.py`` trains."""
from .optim_wrappers import guarded_optim_wrapper_type


def add_safety_hooks(cfg):
    """Make ``cfg`` train with the safety hooks, as the shipped configs do:
    ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
    ``SafeCheckpointHook``, the work_dir claim is added where missing, and
    the non-finite guard too: ``optim_wrapper.type`` ``OptimWrapper`` /
    ``AmpOptimWrapper`` becomes its guarded counterpart and
    ``NonFiniteGuardHook`` is added (not for an optimizer wrapper class of
    someone else's, which cannot be guarded; ``tools/train.py`` calls this
    for any config)."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = {}
    checkpoint = hooks.get('checkpoint')
    if checkpoint is None:
        hooks['checkpoint'] = dict(type='SafeCheckpointHook', interval=1)
    elif isinstance(checkpoint, dict) and checkpoint.get(
            'type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint['type'] = 'SafeCheckpointHook'
    hooks.setdefault('work_dir_claim', dict(type='WorkDirClaimHook'))
    wrapper = cfg.get('optim_wrapper')
    guarded = None
    if isinstance(wrapper, dict):
        guarded = guarded_optim_wrapper_type(wrapper.get('type',
                                                         'OptimWrapper'))
        if guarded is not None:
            wrapper['type'] = guarded
    if guarded is not None or wrapper is None:
        hooks.setdefault('nonfinite_guard', dict(type='NonFiniteGuardHook'))
    return cfg


