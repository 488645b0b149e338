"""Where the shipped configs, tools and model index are.

An installed wheel carries them in ``mmtinyvim/.mim/`` (``configs/``,
``tools/``, ``model-index.yml``, ``metafile.yml``), as mmdet and mmpretrain
do; an editable install links ``.mim/*`` to the clone; a clone on
``PYTHONPATH`` has them beside the package (and is preferred).
:func:`get_config_path` finds a config by name there::

    >>> from mmtinyvim import get_config_path
    >>> get_config_path('maskrcnn_tinyvim_s_coco')    # '.py' optional
    '/.../mmtinyvim/.mim/configs/maskrcnn_tinyvim_s_coco.py'

In a config file, ``_base_`` is evaluated as a Python expression before the
file runs, so a shipped config can be inherited by name::

    _base_ = [__import__('mmtinyvim').get_config_path(
        'maskrcnn_tinyvim_s_coco')]
"""
import difflib
import os
import os.path as osp
from typing import List, Optional

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def mim_root() -> str:
    """The directory that holds ``configs/``, ``tools/`` and
    ``metafile.yml``: the clone when the package is imported from one (its
    sources are the truth; a wheel built there leaves copies in ``.mim``
    that may be stale), else ``mmtinyvim/.mim`` (an installed wheel)."""
    clone = osp.dirname(PACKAGE_DIR)
    if osp.isfile(osp.join(clone, 'setup.py')) and osp.isdir(
            osp.join(clone, 'configs')):
        return clone
    mim = osp.join(PACKAGE_DIR, '.mim')
    if osp.isdir(osp.join(mim, 'configs')):
        return mim
    raise FileNotFoundError(
        f'{mim}/configs does not exist: this mmtinyvim was installed '
        'without its configs (build the wheel with `pip wheel .` from a '
        'clone, or use the package from a clone)')


def configs_dir() -> str:
    """Absolute path of the shipped ``configs/`` directory."""
    return osp.join(mim_root(), 'configs')


def tools_dir() -> str:
    """Absolute path of the shipped ``tools/`` directory (``train.py``,
    ``test.py``, converters, ...)."""
    return osp.join(mim_root(), 'tools')


def list_configs(pattern: Optional[str] = None) -> List[str]:
    """Names (without ``.py``) of the shipped top-level configs, sorted;
    ``pattern`` keeps those that contain it (e.g. ``'tinyvim_s'``)."""
    root = configs_dir()
    names = sorted(f[:-3] for f in os.listdir(root)
                   if f.endswith('.py') and not f.startswith('_'))
    if pattern:
        names = [n for n in names if pattern in n]
    return names


def get_config_path(name: str) -> str:
    """Absolute path of the shipped config ``name``.

    ``name``: a top-level config with or without ``.py``
    (``'maskrcnn_tinyvim_s_coco'``), or a path inside ``configs/``
    (``'_base_/datasets/coco_instance.py'``). A wrong name raises
    ``FileNotFoundError`` listing the closest shipped configs.
    """
    rel = name if name.endswith('.py') else name + '.py'
    if osp.isabs(rel) or '..' in rel.replace('\\', '/').split('/'):
        raise ValueError(f'{name!r}: give a config name or a path inside '
                         'configs/, not an absolute or parent path')
    path = osp.join(configs_dir(), rel)
    if osp.isfile(path):
        return path
    names = list_configs()
    close = difflib.get_close_matches(rel[:-3], names, n=5, cutoff=0.6)
    if not close:  # e.g. 'tinyvim_s': the configs that contain it
        close = [n for n in names if rel[:-3] in n][:5]
    hint = (f'; did you mean {", ".join(close)}?' if close else
            f'; {len(names)} configs, see mmtinyvim.list_configs()')
    raise FileNotFoundError(
        f'No config {name!r} in {configs_dir()}{hint}')
