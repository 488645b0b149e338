"""One registration for mmdet, mmseg and mmpretrain.

The three toolboxes' ``MODELS`` registries are children of mmengine's root
``MODELS`` and look a type up in their parents when they lack it, so a module
registered in the root is buildable from the configs of all three.
"""
from mmengine.registry import MODELS

__all__ = ['MODELS']
