"""mmtinyvim: TinyViM and MobileMamba backbones for mmdet, mmseg, mmpretrain,
and as plain PyTorch models (:func:`create_model`, :func:`list_models`).

Importing the package (``custom_imports=dict(imports=['mmtinyvim'])`` in a
config) only registers its modules, hooks and datasets: mmengine, torch,
the warning filters and the loggers are left as they were. With torch alone
it gives the backbones and :func:`create_model`; each toolbox's modules are
registered when that toolbox is importable, the hooks when mmengine is, and
the variants as timm models when timm is. The opt-ins are explicit:
:func:`mmtinyvim.utils.use_safe_loader_in_mmengine` (or the configs'
``SafeLoadingHook``) for mmengine's checkpoint loading under torch's
``weights_only=True``, ``DeployHook`` for validation and testing on a folded
copy, :func:`mmtinyvim.engine.for_inference` in Python.
"""
__version__ = '0.1.0'

from .stack import check_stack, importable  # noqa: E402,F401

from . import models  # noqa: F401,E402  (registers the modules)
from .models import create_model, list_models  # noqa: F401,E402
from .config_path import (configs_dir, get_config_path,  # noqa: E402,F401
                          list_configs, tools_dir)

if importable('mmengine'):
    from . import engine  # noqa: F401  (registers the hooks)
if importable('mmcv'):
    from .datasets import size_limit  # noqa: F401  (CheckMaxImageSize)
# mmpretrain model names (list_models / get_model / inference_model) for the
# ImageNet configs: a registration in mmpretrain's ModelHub, only when
# mmpretrain is installed
if importable('mmpretrain'):
    from .integrations.mmpretrain_hub import register_mmpretrain_models
    register_mmpretrain_models()
