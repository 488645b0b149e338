"""mmtinyvim: TinyViM and MobileMamba backbones for mmdet, mmseg, mmpretrain.

Importing the package (``custom_imports=dict(imports=['mmtinyvim'])`` in a
config) only registers its modules, hooks and datasets: mmengine, torch,
the warning filters and the loggers are left as they were. The opt-ins are
explicit: :func:`mmtinyvim.utils.use_safe_loader_in_mmengine` (or the
configs' ``SafeLoadingHook``) for mmengine's checkpoint loading under
torch's ``weights_only=True``, ``DeployHook`` for validation and testing on
a folded copy, :func:`mmtinyvim.engine.for_inference` in Python.
"""
__version__ = '0.1.0'

from .stack import check_stack  # noqa: E402

check_stack()  # one message naming both stacks when neither is installed

from . import models  # noqa: F401,E402  (registers the modules)
from . import engine  # noqa: F401,E402  (registers the hooks)
from .datasets import size_limit  # noqa: F401,E402  (CheckMaxImageSize)
from .config_path import (configs_dir, get_config_path,  # noqa: E402,F401
                          list_configs, tools_dir)

# mmpretrain model names (list_models / get_model / inference_model) for the
# ImageNet configs: a registration in mmpretrain's ModelHub, only when
# mmpretrain is installed
import importlib.util  # noqa: E402

if importlib.util.find_spec('mmpretrain') is not None:
    from .integrations.mmpretrain_hub import register_mmpretrain_models
    register_mmpretrain_models()
