"""Which family and variant a checkpoint's tensors belong to, read from
key names (the family's ``markers`` in :mod:`mmtinyvim.models.zoo`) and
tensor shapes (its backbone's ``arch_zoo``)."""
import functools
import re
from typing import Dict, List, Optional

import torch

from .zoo import FAMILIES, get_family

# TinyViM's dense output norms (norm0, norm2, ...): present or not depending
# on out_indices and on whether the file is a classifier
_OUTPUT_NORM = re.compile(r'norm\d+\.')


def family_module(family: str):
    """The backbone module of ``family`` (its official-format converters)."""
    return get_family(family).module


def _name(family: str) -> str:
    return get_family(family).backbone.__name__


def detect_family(state_dict: Dict[str, torch.Tensor],
                  prefix: str = '') -> Optional[str]:
    """The family whose backbone modules the keys (after ``prefix``) name;
    None when they name neither or both."""
    found = [family for family, spec in FAMILIES.items()
             if any(k.startswith(tuple(prefix + m for m in spec.markers))
                    for k in state_dict)]
    return found[0] if len(found) == 1 else None


def check_family(state_dict, family: str, src: str, prefix: str = ''):
    """Raise ``ValueError`` unless the keys are those of ``family``."""
    detected = detect_family(state_dict, prefix)
    if detected == family:
        return
    markers = ' / '.join(prefix + m for m in get_family(family).markers)
    if detected is None:
        raise ValueError(
            f'{src} is not a {_name(family)} checkpoint: no key (or keys of '
            f'both families) start with {markers}; first keys: '
            f'{list(state_dict)[:4]}')
    raise ValueError(
        f'{src} is a {_name(detected)} checkpoint (keys '
        f'{_example(state_dict, prefix, detected)}, ...), not a '
        f'{_name(family)} one: pass --family {detected}, or convert the '
        f'{_name(family)} file you meant.')


def _example(state_dict, prefix, family):
    markers = tuple(prefix + m for m in FAMILIES[family].markers)
    return ', '.join([k for k in state_dict if k.startswith(markers)][:2])


def _comparable(shapes: Dict[str, tuple], family: str) -> Dict[str, tuple]:
    return {k: v for k, v in shapes.items()
            if not k.startswith(FAMILIES[family].classifier_prefixes)
            and not _OUTPUT_NORM.match(k)}


@functools.lru_cache(maxsize=None)
def _backbone_shapes(family: str, arch: str) -> Dict[str, tuple]:
    """Key -> shape of the zoo variant's backbone (built on CPU, < 1.5 s)."""
    model = FAMILIES[family].backbone(arch=arch)
    return _comparable(
        {k: tuple(v.shape) for k, v in model.state_dict().items()}, family)


def matching_archs(state_dict, family: str, prefix: str = '') -> List[str]:
    """The zoo variants of ``family`` whose backbone has exactly the keys and
    shapes of the checkpoint's backbone tensors (classifier and dense output
    norms aside). MobileMamba-B1/B2/B4 share their weights' shapes."""
    shapes = _comparable(
        {k[len(prefix):]: tuple(v.shape) for k, v in state_dict.items()
         if k.startswith(prefix)}, get_family(family).name)
    return [arch for arch in FAMILIES[family].archs
            if _backbone_shapes(family, arch) == shapes]


def check_arch(state_dict, family: str, arch: Optional[str], src: str,
               prefix: str = '') -> List[str]:
    """The matching variants; ``ValueError`` when ``arch`` is given and is
    not among them."""
    archs = get_family(family).archs
    if arch is not None and arch.lower() not in archs:
        raise ValueError(f'Unknown {_name(family)} arch {arch!r}; valid: '
                         f'{", ".join(archs)}')
    matches = matching_archs(state_dict, family, prefix)
    if arch is not None and arch.lower() not in matches:
        found = (f'its tensors are those of {describe(family, matches)}: '
                 f'pass --arch {matches[0]}' if matches else
                 'its tensors fit no variant of the zoo (a custom or '
                 'deployed model?)')
        raise ValueError(f'{src} is not a {describe(family, [arch.lower()])} '
                         f'checkpoint: {found}.')
    return matches


def describe(family: str, archs: List[str]) -> str:
    if not archs:
        return f'{_name(family)} (variant unknown)'
    return '/'.join(f'{_name(family)}-{a.upper()}' for a in archs)
