"""One registration for mmdet, mmseg and mmpretrain.

The three toolboxes' ``MODELS`` and ``TRANSFORMS`` registries are children
of mmengine's root ones and look a type up in their parents when they lack
it, so a module (or transform) registered in the root is buildable from the
configs of all three.

Without mmengine (torch alone) the names stand for registries that record
nothing: the backbones' ``@MODELS.register_module()`` leaves the class as it
is, and building from them says which packages are missing.
"""
from .stack import check_stack, importable

__all__ = ['MODELS', 'TRANSFORMS']


class _AbsentRegistry:
    """Stands for an mmengine registry when mmengine cannot be imported."""

    def __init__(self, name: str):
        self.name = name

    def register_module(self, name=None, force=False, module=None):
        if module is not None:
            return module
        return lambda cls: cls

    def _refuse(self, *args, **kwargs):
        check_stack(what=f'Building from the {self.name} registry')

    build = get = _refuse


if importable('mmengine'):
    from mmengine.registry import MODELS, TRANSFORMS
else:
    MODELS = _AbsentRegistry('MODELS')
    TRANSFORMS = _AbsentRegistry('TRANSFORMS')
