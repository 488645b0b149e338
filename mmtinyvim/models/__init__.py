"""The backbones and :func:`create_model` need torch only; the heads, the
neck and the distillation classifier extend a toolbox and are registered
when it is importable (mmseg-only or mmdet-only installs get what they can
use)."""
from ..stack import importable
from .backbones import *  # noqa: F401,F403
from .factory import create_model, list_models  # noqa: F401
from .heads import *  # noqa: F401,F403

if importable('mmpretrain'):
    from .distillation import DistillationImageClassifier  # noqa: F401
if importable('mmcv'):
    from .necks import *  # noqa: F401,F403
if importable('timm'):
    from . import timm_models  # noqa: F401  (registers the variants)
