"""The backbone module of each family, and which family and variant a
checkpoint's tensors belong to (read from key names and shapes)."""
import functools
import importlib
import re
from typing import Dict, List, Optional

import torch

FAMILIES = ('tinyvim', 'mobilemamba')
NAMES = {'tinyvim': 'TinyViM', 'mobilemamba': 'MobileMamba'}
# top-level backbone modules that only one family has
MARKERS = {'tinyvim': ('network.', ), 'mobilemamba': ('blocks1.', 'blocks2.',
                                                     'blocks3.')}
# TinyViM's dense output norms (norm0, norm2, ...): present or not depending
# on out_indices and on whether the file is a classifier
_OUTPUT_NORM = re.compile(r'norm\d+\.')


def family_module(family: str):
    if family not in FAMILIES:
        raise ValueError(f'Unknown family {family!r}; valid: {FAMILIES}')
    return importlib.import_module(f'mmtinyvim.models.backbones.{family}')


def detect_family(state_dict: Dict[str, torch.Tensor],
                  prefix: str = '') -> Optional[str]:
    """The family whose backbone modules the keys (after ``prefix``) name;
    None when they name neither or both."""
    found = [family for family, markers in MARKERS.items()
             if any(k.startswith(tuple(prefix + m for m in markers))
                    for k in state_dict)]
    return found[0] if len(found) == 1 else None


def check_family(state_dict, family: str, src: str, prefix: str = ''):
    """Raise ``ValueError`` unless the keys are those of ``family``."""
    detected = detect_family(state_dict, prefix)
    if detected == family:
        return
    markers = ' / '.join(prefix + m for m in MARKERS[family])
    if detected is None:
        raise ValueError(
            f'{src} is not a {NAMES[family]} checkpoint: no key (or keys of '
            f'both families) start with {markers}; first keys: '
            f'{list(state_dict)[:4]}')
    raise ValueError(
        f'{src} is a {NAMES[detected]} checkpoint (keys '
        f'{_example(state_dict, prefix, detected)}, ...), not a '
        f'{NAMES[family]} one: pass --family {detected}, or convert the '
        f'{NAMES[family]} file you meant.')


def _example(state_dict, prefix, family):
    markers = tuple(prefix + m for m in MARKERS[family])
    return ', '.join([k for k in state_dict if k.startswith(markers)][:2])


def _comparable(shapes: Dict[str, tuple], module) -> Dict[str, tuple]:
    return {k: v for k, v in shapes.items()
            if not k.startswith(module.CLASSIFIER_PREFIXES)
            and not _OUTPUT_NORM.match(k)}


@functools.lru_cache(maxsize=None)
def _backbone_shapes(family: str, arch: str) -> Dict[str, tuple]:
    """Key -> shape of the zoo variant's backbone (built on CPU, < 1.5 s)."""
    module = family_module(family)
    model = getattr(module, NAMES[family])(arch=arch)
    return _comparable(
        {k: tuple(v.shape) for k, v in model.state_dict().items()}, module)


def matching_archs(state_dict, family: str, prefix: str = '') -> List[str]:
    """The zoo variants of ``family`` whose backbone has exactly the keys and
    shapes of the checkpoint's backbone tensors (classifier and dense output
    norms aside). MobileMamba-B1/B2/B4 share their weights' shapes."""
    module = family_module(family)
    shapes = _comparable(
        {k[len(prefix):]: tuple(v.shape) for k, v in state_dict.items()
         if k.startswith(prefix)}, module)
    zoo = getattr(module, NAMES[family]).arch_zoo
    return [arch for arch in zoo if _backbone_shapes(family, arch) == shapes]


def check_arch(state_dict, family: str, arch: Optional[str], src: str,
               prefix: str = '') -> List[str]:
    """The matching variants; ``ValueError`` when ``arch`` is given and is
    not among them."""
    zoo = getattr(family_module(family), NAMES[family]).arch_zoo
    if arch is not None and arch.lower() not in zoo:
        raise ValueError(f'Unknown {NAMES[family]} arch {arch!r}; valid: '
                         f'{", ".join(zoo)}')
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
        return f'{NAMES[family]} (variant unknown)'
    return '/'.join(f'{NAMES[family]}-{a.upper()}' for a in archs)
