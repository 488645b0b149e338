"""The backbone module of each family: its converters and classifier keys."""
import importlib

FAMILIES = ('tinyvim', 'mobilemamba')


def family_module(family: str):
    if family not in FAMILIES:
        raise ValueError(f'Unknown family {family!r}; valid: {FAMILIES}')
    return importlib.import_module(f'mmtinyvim.models.backbones.{family}')
