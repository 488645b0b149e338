"""Clear errors for the two ways a dataset goes wrong before training starts:
a path that does not exist, and an annotation source that lists no image."""
import os
from pathlib import PurePosixPath

# task -> (directory the configs expect under the demo out-root, --task)
DEMO_LAYOUT = {
    'coco': ('coco', 'coco'),
    'ade': ('ade/ADEChallengeData2016', 'ade'),
    'imagenet': ('imagenet', 'imagenet'),
}


class EmptyDatasetError(ValueError):
    """The annotation file or folder lists no sample."""


def is_local(path: str) -> bool:
    return '://' not in str(path)


def demo_hint(task: str, data_root: str) -> str:
    """How to get data at ``data_root``: generate the demo data or point the
    config elsewhere."""
    subdir, task_flag = DEMO_LAYOUT[task]
    root = PurePosixPath(str(data_root).rstrip('/'))
    out_root = 'data'
    if str(root).endswith(subdir):
        parent = str(root)[:-len(subdir)].rstrip('/')
        out_root = parent or '.'
    return (
        'To try the configs without the real dataset, write the synthetic '
        'demo data in the same layout with\n'
        f'    python -m mmtinyvim.datasets.make_demo_data --task {task_flag} '
        f'--out-root {out_root}\n'
        'or point the config at your copy, e.g. --cfg-options '
        'train_dataloader.dataset.data_root=... val_dataloader.dataset.'
        'data_root=... (and the evaluator\'s ann_file where it has one).')


def require_paths(task: str, data_root: str, paths: dict):
    """Raise FileNotFoundError naming the first local path that is missing.

    ``paths``: description -> path (already joined with ``data_root``).
    """
    for what, path in paths.items():
        if path and is_local(path) and not os.path.exists(path):
            raise FileNotFoundError(
                f'{what} not found: {path} (data_root={data_root!r}).\n'
                + demo_hint(task, data_root))


def require_samples(data_list: list, source: str, what: str):
    if not data_list:
        raise EmptyDatasetError(
            f'{source} lists no {what}: the dataset would be empty. Check '
            'that it is the intended file and that it is complete.')
