"""The safety defaults of the shipped configs, given to any config that
``tools/train.py`` trains."""


def add_safety_hooks(cfg):
    """Make ``cfg`` train with the safety hooks, as the shipped configs do:
    ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
    ``SafeCheckpointHook`` and the work_dir claim and the non-finite guard
    are added where missing (``tools/train.py`` calls this for any
    config)."""
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
    hooks.setdefault('nonfinite_guard', dict(type='NonFiniteGuardHook'))
    return cfg


