"""Safe checkpoint loading: what sits below the models. Importing it
changes nothing outside the package (mmengine's loaders are routed through
:func:`safe_torch_load` only by an explicit
:func:`use_safe_loader_in_mmengine`)."""
from .checkpoint import (SAFE_GLOBALS, restore_mmengine_loaders,
                         safe_torch_load, strict_load, unwrap_state_dict,
                         use_safe_loader_in_mmengine)

__all__ = ['SAFE_GLOBALS', 'restore_mmengine_loaders', 'safe_torch_load',
           'strict_load', 'unwrap_state_dict', 'use_safe_loader_in_mmengine']
