"""The heads are those of a toolbox (mmpretrain's ``ClsHead``, mmdet's
``SSDHead``): each is imported, and so registered, when its toolbox is
importable; asking for one without it says what is missing."""
from ...stack import check_stack, importable

# head -> the toolbox it extends
TOOLBOX = {'TinyViMClsHead': 'mmpretrain', 'MobileMambaClsHead': 'mmpretrain',
           'SSDLiteHead': 'mmdet'}

if importable('mmpretrain'):
    from .mobilemamba_head import MobileMambaClsHead
    from .tinyvim_head import TinyViMClsHead
if importable('mmdet'):
    from .ssdlite_head import SSDLiteHead

__all__ = [name for name in TOOLBOX if name in globals()]


def __getattr__(name):
    if name in TOOLBOX:
        check_stack(('mmengine', 'mmcv', TOOLBOX[name]), what=name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
