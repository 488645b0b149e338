"""Which OpenMMLab stack is installed.

mmtinyvim runs on either of two distributions of the same packages (same
import names): the original OpenMMLab releases (``pip install
'mmtinyvim[openmmlab]'``: mmengine 0.10.7, mmcv 2.1, mmdet 3.3, mmseg 1.2,
mmpretrain 1.2) or their maintained continuation by onedl (``pip install
'mmtinyvim[onedl]'``: onedl-mmengine, onedl-mmcv, onedl-mmdetection,
onedl-mmsegmentation, onedl-mmpretrain). The package metadata therefore
requires neither; :func:`check_stack` turns a missing one into one message.
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


def check_stack():
    """Raise one ImportError naming both install options when mmengine or
    mmcv cannot be imported."""
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f'mmtinyvim needs an OpenMMLab stack, but {", ".join(missing)} '
            'cannot be imported. Install one of:\n'
            "  pip install 'mmtinyvim[openmmlab]'  # mmengine 0.10.7, mmcv "
            '2.1 (scripts/install_mmcv.sh), mmdet 3.3, mmseg 1.2, '
            'mmpretrain 1.2\n'
            "  pip install 'mmtinyvim[onedl]'      # the maintained "
            'onedl-mm* continuation (onedl-mmcv needs a wheel or a source '
            'build, see the README)\n'
            'or run scripts/setup_env.sh (MMTINYVIM_STACK=onedl for the '
            'second).')
