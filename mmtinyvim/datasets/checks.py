"""Clear errors and warnings for the ways a dataset goes wrong.

Before training starts: a path that does not exist, an annotation source that
lists no image, an annotation file that is not valid JSON. While loading: an
image (or label map) file that is missing or cannot be decoded, handled by
:class:`BadImagePolicy`.
"""
import json
import logging
import os
from pathlib import PurePosixPath
from typing import List, Optional, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

from .size_limit import ImageTooLargeError

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


class AnnotationFileError(ValueError):
    """The annotation file cannot be parsed."""


def annotation_json_error(path: str, err: json.JSONDecodeError):
    """An :class:`AnnotationFileError` for ``err``, raised while parsing
    ``path``: the file, the line and column, and the text there."""
    text = err.doc or ''
    lines = text.splitlines()
    line = lines[err.lineno - 1] if 0 < err.lineno <= len(lines) else ''
    excerpt = line[max(0, err.colno - 41):err.colno + 39]
    # an unterminated string runs to the end of the file: JSON strings hold
    # no raw newline
    ends = (not text[err.pos:].strip() or
            err.msg.startswith('Unterminated string'))
    return AnnotationFileError(
        f'Annotation file {path} is not valid JSON: {err.msg} at line '
        f'{err.lineno} column {err.colno}'
        + (' (the file ends before the JSON does: an interrupted download '
           'or save?)'
           if ends else f'; the text there: {excerpt!r}'))


# ------------------------------------------------------ unreadable images --

class BadImageError(RuntimeError):
    """An image or label map of the dataset is missing or cannot be read."""


_JPEG_START, _JPEG_END = b'\xff\xd8', b'\xff\xd9'
# a JPEG may carry padding after its end-of-image marker; the marker is
# searched for in this many trailing bytes
_JPEG_TAIL = 4096


def _jpeg_tail_problem(path: str, size: int) -> Optional[str]:
    """Cheap check (one seek, one small read) for a JPEG cut short: OpenCV
    decodes those without an error, painting the missing part grey."""
    with open(path, 'rb') as f:
        head = f.read(2)
        if head != _JPEG_START:
            return None
        f.seek(max(2, size - _JPEG_TAIL))
        tail = f.read()
    if _JPEG_END not in tail:
        return (f'truncated JPEG ({size} bytes, no end-of-image marker: an '
                'interrupted download or copy?)')
    return None


def image_file_problem(path: str, full: bool = True) -> Optional[str]:
    """Why the local image ``path`` cannot be used, or None.

    ``full=False`` only does the checks that cost no decoding (missing,
    empty, JPEG without its end marker); ``full=True`` also decodes it.
    Remote paths (``scheme://``) are not checked.
    """
    if not is_local(path):
        return None
    if not os.path.exists(path):
        return 'file not found'
    size = os.path.getsize(path)
    if size == 0:
        return 'empty file (0 bytes)'
    problem = _jpeg_tail_problem(path, size)
    if problem or not full:
        return problem
    with open(path, 'rb') as f:
        data = f.read()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8),
                           cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return (f'not a decodable image ({size} bytes starting with '
                f'{data[:8]!r})')
    return None


class BadImagePolicy:
    """Mixin for mmengine ``BaseDataset`` subclasses: what happens when a
    sample's image (or label map) file is missing or cannot be decoded.

    Nothing is read when the dataset is built; each file is checked when its
    sample is loaded.

    * ``on_bad_image='skip'`` (training): the sample is skipped with one
      warning per file naming it and the reason, and mmengine's
      ``BaseDataset.__getitem__`` draws another sample (it does so for a
      ``prepare_data`` that returns None). More than ``max_bad_in_a_row``
      unreadable samples in a row raise :class:`BadImageError` naming them.
    * ``on_bad_image='raise'`` (evaluation): :class:`BadImageError` naming the
      file; skipping would silently change the metrics.
    * ``None`` (default): 'raise' for evaluation sets (``test_mode=True`` or
      :meth:`_is_evaluation_split`), else 'skip'.

    A pipeline error while the files are fine is re-raised unchanged.
    """

    # data_info keys of the files a sample reads, with their description
    file_keys: Tuple[Tuple[str, str], ...] = (('img_path', 'image'), )

    def _init_bad_image_policy(self, on_bad_image, max_bad_in_a_row):
        if on_bad_image not in (None, 'skip', 'raise'):
            raise ValueError(f"on_bad_image={on_bad_image!r}; valid: 'skip', "
                             "'raise', None (raise for evaluation sets, "
                             'else skip)')
        if not isinstance(max_bad_in_a_row, int) or max_bad_in_a_row < 1:
            raise ValueError('max_bad_in_a_row must be an int >= 1, got '
                             f'{max_bad_in_a_row!r}')
        self._on_bad_image = on_bad_image
        self.max_bad_in_a_row = max_bad_in_a_row
        self._warned_files = set()
        self._bad_in_a_row: List[Tuple[str, str]] = []

    def _is_evaluation_split(self) -> bool:
        return False

    def _check_bad_image_policy(self):
        """Called once the dataset is built (``test_mode`` is known)."""
        if self._on_bad_image == 'skip' and self.test_mode:
            raise ValueError("on_bad_image='skip' needs test_mode=False: "
                             'mmengine does not draw other samples in test '
                             'mode')

    @property
    def on_bad_image(self) -> str:
        if self._on_bad_image is not None:
            return self._on_bad_image
        evaluation = self.test_mode or self._is_evaluation_split()
        return 'raise' if evaluation else 'skip'

    def _file_problems(self, info: dict, full: bool):
        problems = []
        for key, what in self.file_keys:
            path = info.get(key)
            if path:
                problem = image_file_problem(str(path), full)
                if problem:
                    problems.append((what, str(path), problem))
        return problems

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        problems = self._file_problems(info, full=False)
        if not problems:
            try:
                data = super().prepare_data(idx)
            except ImageTooLargeError:
                # it decoded: decoding it again to look for a problem would
                # double the peak memory the limit is there to bound
                raise
            except Exception:
                problems = self._file_problems(info, full=True)
                if not problems:
                    raise  # the files are fine: not ours to explain
            else:
                if data is not None:
                    self._bad_in_a_row.clear()
                return data
        return self._bad_sample(problems)

    def _bad_sample(self, problems):
        what, path, reason = problems[0]
        if self.on_bad_image == 'raise':
            raise BadImageError(
                f'Cannot read the {what} {path}: {reason}. This is an '
                'evaluation set, where skipping samples would silently '
                'change the metrics: restore the file, or remove the sample '
                f'from {self._sample_source()}.')
        if path not in self._warned_files:
            self._warned_files.add(path)
            print_log(
                f'Skipping the training sample with the unreadable {what} '
                f'{path}: {reason}. Another sample is drawn instead; it '
                'will be skipped whenever it is drawn (restore it or remove '
                f'it from {self._sample_source()}).',
                logger='current', level=logging.WARNING)
        self._bad_in_a_row.append((path, reason))
        limit = min(self.max_bad_in_a_row, self.max_refetch)
        if len(self._bad_in_a_row) > limit:
            count = len(self._bad_in_a_row)
            files = dict(self._bad_in_a_row)  # each file once, in order
            self._bad_in_a_row = []
            raise BadImageError(
                f'{count} training samples in a row could not be read (more '
                f'than max_bad_in_a_row={limit}), from {len(files)} files: ' +
                '; '.join(f'{p} ({r})' for p, r in files.items()) +
                '. Is the data complete, and do data_root / data_prefix '
                'point at it?')
        return None

    def _sample_source(self) -> str:
        return self.ann_file or 'the image directory'
