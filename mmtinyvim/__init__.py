"""mmtinyvim: TinyViM and MobileMamba backbones for mmdet, mmseg, mmpretrain.

Importing the package (``custom_imports=dict(imports=['mmtinyvim'])`` in a
config) registers every module and routes mmengine's local checkpoint loading
through :func:`mmtinyvim.utils.safe_torch_load`, so that the toolboxes' own
``tools/test.py`` and ``resume`` read runner checkpoints under torch's
``weights_only=True`` default (with a scoped allow-list, see
:mod:`mmtinyvim.utils.checkpoint`).
"""
__version__ = '0.1.0'

import warnings  # noqa: E402

# setuptools (< 81, pinned because mmengine's package lookups for ``pkg::``
# configs and mim need it) warns on every import of pkg_resources; the user
# can do nothing about it. Only that message is silenced.
warnings.filterwarnings('ignore', category=UserWarning,
                        message='pkg_resources is deprecated as an API')

from .stack import check_stack  # noqa: E402

check_stack()  # one message naming both stacks when neither is installed

from . import models  # noqa: F401,E402  (registers the modules)
from . import engine  # noqa: F401,E402  (registers the hooks)
from .datasets import size_limit  # noqa: F401,E402  (CheckMaxImageSize)
from .utils import use_safe_loader_in_mmengine  # noqa: E402

use_safe_loader_in_mmengine()  # idempotent; utils' own import calls it too
from .config_path import (configs_dir, get_config_path,  # noqa: E402,F401
                          list_configs, tools_dir)
