"""Safe checkpoint loading: what sits below the models.

Importing this package routes mmengine's local checkpoint loading through
:func:`safe_torch_load`.
"""
from .checkpoint import (SAFE_GLOBALS, safe_torch_load, strict_load,
                         unwrap_state_dict, use_safe_loader_in_mmengine)

use_safe_loader_in_mmengine()

__all__ = ['SAFE_GLOBALS', 'safe_torch_load', 'strict_load',
           'unwrap_state_dict', 'use_safe_loader_in_mmengine']
