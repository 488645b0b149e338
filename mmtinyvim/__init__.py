"""mmtinyvim: TinyViM and MobileMamba backbones for mmdet, mmseg, mmpretrain."""
__version__ = '0.1.0'

from . import models  # noqa: F401,E402  (registers the modules)
