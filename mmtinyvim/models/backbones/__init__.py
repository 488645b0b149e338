from .mobilemamba import MobileMamba
from .tinyvim import TinyViM

__all__ = ['TinyViM', 'MobileMamba']
