"""Which OpenMMLab stack is installed.

mmtinyvim runs on either of two distributions of the same packages (same
import names): the original OpenMMLab releases (``pip install
'mmtinyvim[openmmlab]'``: mmengine 0.10.7, mmcv 2.1, mmdet 3.3, mmseg 1.2,
mmpretrain 1.2) or their maintained continuation by onedl (``pip install
'mmtinyvim[onedl]'``: onedl-mmengine, onedl-mmcv, onedl-mmdetection,
onedl-mmsegmentation, onedl-mmpretrain). The package metadata therefore
requires neither; :func:`check_stack` turns a missing one into one message
where an OpenMMLab part is used. With torch alone, ``import mmtinyvim`` gives
the backbones and :func:`mmtinyvim.create_model`; each toolbox's modules are
registered when that toolbox is importable (:func:`importable`).
"""
import importlib.util
from importlib import metadata

# import name -> (original distribution, onedl distribution)
DISTRIBUTIONS = {
    'mmengine': ('mmengine', 'onedl-mmengine'),
    'mmcv': ('mmcv', 'onedl-mmcv'),
    'mmdet': ('mmdet', 'onedl-mmdetection'),
    'mmseg': ('mmsegmentation', 'onedl-mmsegmentation'),
    'mmpretrain': ('mmpretrain', 'onedl-mmpretrain'),
}
REQUIRED = ('mmengine', 'mmcv')  # the toolboxes are needed per task
TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')


def _installed(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def stack_versions() -> dict:
    """``{import name: 'distribution version'}`` for the installed ones."""
    found = {}
    for module, dists in DISTRIBUTIONS.items():
        for dist in dists:
            version = _installed(dist)
            if version:
                found[module] = f'{dist} {version}'
                break
    return found


def stack_name() -> str:
    """'onedl', 'openmmlab', 'mixed' or 'none'."""
    kinds = set()
    for module, dists in DISTRIBUTIONS.items():
        if _installed(dists[1]):
            kinds.add('onedl')
        elif _installed(dists[0]):
            kinds.add('openmmlab')
    if not kinds:
        return 'none'
    return kinds.pop() if len(kinds) == 1 else 'mixed'


def importable(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, without
    importing it. An import hook that refuses the name counts as absent."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_stack(modules=REQUIRED, what='mmtinyvim'):
    """Raise one ImportError naming both install options when one of
    ``modules`` (default: mmengine and mmcv) cannot be imported.

    Called where an OpenMMLab part is used (building from a registry,
    importing :mod:`mmtinyvim.engine`, an mm head), not at ``import
    mmtinyvim``: the backbones and :func:`mmtinyvim.create_model` need torch
    only. ``what`` names the part that needs them."""
    missing = [m for m in modules if not importable(m)]
    if missing:
        raise ImportError(
            f'{what} needs an OpenMMLab stack, but {", ".join(missing)} '
            'cannot be imported (the backbones and mmtinyvim.create_model '
            'need torch only). Install one of:\n'
            "  pip install 'mmtinyvim[openmmlab]'  # mmengine 0.10.7, mmcv "
            '2.1 (scripts/install_mmcv.sh), mmdet 3.3, mmseg 1.2, '
            'mmpretrain 1.2\n'
            "  pip install 'mmtinyvim[onedl]'      # the maintained "
            'onedl-mm* continuation (onedl-mmcv needs a wheel or a source '
            'build, see the README)\n'
            'or run scripts/setup_env.sh (MMTINYVIM_STACK=onedl for the '
            'second).')
