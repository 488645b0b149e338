"""Safe checkpoint loading, resumable-training hooks, mixed-precision checks.

Importing this package routes mmengine's local checkpoint loading through
:func:`safe_torch_load` and registers :class:`ResumableRandomnessHook`,
:class:`CUDAGraphTrainingHook` and :class:`DeployHook`.
"""
from .checkpoint import (SAFE_GLOBALS, safe_torch_load, strict_load,
                         unwrap_state_dict, use_safe_loader_in_mmengine)
from .hooks import (CUDAGraphTrainingHook, DeployHook,
                    ResumableRandomnessHook, reseed_global_generators)

use_safe_loader_in_mmengine()

__all__ = ['SAFE_GLOBALS', 'safe_torch_load', 'strict_load',
           'unwrap_state_dict', 'use_safe_loader_in_mmengine',
           'ResumableRandomnessHook', 'reseed_global_generators',
           'CUDAGraphTrainingHook', 'DeployHook']
