from .backbones import *  # noqa: F401,F403
from .distillation import DistillationImageClassifier  # noqa: F401
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
