from .mobilemamba_head import MobileMambaClsHead
from .tinyvim_head import TinyViMClsHead

__all__ = ['TinyViMClsHead', 'MobileMambaClsHead']
