"""One registration for mmdet, mmseg and mmpretrain.

The three toolboxes' ``MODELS`` and ``TRANSFORMS`` registries are children
of mmengine's root ones and look a type up in their parents when they lack
it, so a module (or transform) registered in the root is buildable from the
configs of all three.
"""
from mmengine.registry import MODELS, TRANSFORMS

__all__ = ['MODELS', 'TRANSFORMS']
