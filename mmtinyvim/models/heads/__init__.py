from .mobilemamba_head import MobileMambaClsHead
from .ssdlite_head import SSDLiteHead
from .tinyvim_head import TinyViMClsHead

__all__ = ['TinyViMClsHead', 'MobileMambaClsHead', 'SSDLiteHead']
