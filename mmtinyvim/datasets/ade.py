"""mmseg's ADE20KDataset with clear errors for missing, empty or broken
data."""
import os

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import ADE20KDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

from .checks import BadImagePolicy, require_paths, require_samples
from .size_limit import toolbox_check

# the test pipelines' image-size check, with the mmseg limit
TRANSFORMS.register_module(module=toolbox_check('mmseg'))

EVALUATION_DIRS = ('validation', 'testing', 'val', 'test')


class LabelMapError(ValueError):
    """A label map holds values that are no class index, is not a
    single-channel image, or is not the size of its image."""


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Raise :class:`LabelMapError` when ``gt_seg_map`` (as loaded by mmseg's
    ``LoadAnnotations``) is not a 2-D map of values in
    ``[0, num_classes)`` or ``ignore_index``, or is not the size of the
    image as decoded (``ori_shape``, which a resize before the labels are
    loaded, as in the test pipelines, leaves unchanged). mmseg would resize
    such a map with the image and train on labels that do not lie on their
    pixels, and its evaluation would fail comparing maps of two sizes.

    Checked where the map is read, one ``np.bincount`` over a map already in
    memory: checking every map when the dataset is built would decode all
    of them (20k PNGs for ADE20K) before training starts.
    :class:`CheckedADE20KDataset` puts it after each ``LoadAnnotations`` of
    its pipeline.

    Args:
        num_classes (int): number of classes.
        ignore_index (int): the label that is ignored. Defaults to 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results):
        seg = results.get('gt_seg_map')
        if seg is None:
            return results
        path = results.get('seg_map_path')
        if seg.ndim != 2:
            raise LabelMapError(
                f'Label map {path} has shape {seg.shape} once loaded: '
                f'{seg.shape[-1] if seg.ndim == 3 else "several"} channels, '
                'a colour (RGB) rendering of the labels? Label maps must be '
                'single-channel (grayscale / palette index) PNGs whose pixel '
                f'values are class indices ({self._valid_raw(results)}).')
        self._check_size(seg, results)
        if seg.dtype == np.uint8:
            present = np.flatnonzero(np.bincount(seg.ravel(), minlength=256))
        else:
            present = np.unique(seg)
        bad = [int(v) for v in present
               if not (0 <= v < self.num_classes or v == self.ignore_index)]
        if bad:
            shown = ', '.join(map(str, self._raw(bad, results)[:10]))
            more = f' (+{len(bad) - 10} more)' if len(bad) > 10 else ''
            raise LabelMapError(
                f'Label map {path} holds the values {shown}{more}, outside '
                f'the valid range: {self._valid_raw(results)}. Is it a label '
                'map of this dataset?')
        return results

    @staticmethod
    def _check_size(seg, results):
        image_shape = results.get('ori_shape')
        if image_shape is None:  # no image loaded before the labels
            return
        height, width = image_shape[:2]
        if tuple(seg.shape[:2]) == (height, width):
            return
        raise LabelMapError(
            f'Label map {results.get("seg_map_path")} is {seg.shape[1]}x'
            f'{seg.shape[0]} (width x height) but its image '
            f'{results.get("img_path")} is {width}x{height}: a label map '
            'must have the size of its image, pixel for pixel (resizing it '
            'would put labels on pixels they were not drawn for). Use the '
            'label map made for this image, or remove the pair from the '
            'dataset.')

    def __repr__(self):
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')

    @staticmethod
    def _reduced(results):
        return (results.get('reduce_zero_label', False) and
                results.get('label_map') is None)

    def _raw(self, values, results):
        """File values of loaded ``values`` (undoing reduce_zero_label)."""
        if not self._reduced(results):
            return values
        return [v + 1 if v != self.ignore_index else v for v in values]

    def _valid_raw(self, results):
        n = self.num_classes
        if self._reduced(results):
            return (f'0 (unlabelled, ignored), 1-{n} (the {n} classes; '
                    f'reduce_zero_label makes k class k-1) or '
                    f'{self.ignore_index} (ignored)')
        return (f'0-{n - 1} (the {n} classes) or {self.ignore_index} '
                '(ignored)')


@DATASETS.register_module()
class CheckedADE20KDataset(BadImagePolicy, ADE20KDataset):
    """``ADE20KDataset`` (``reduce_zero_label=True``: label 0 is ignored,
    k becomes k-1) that fails early and clearly: a missing image or label
    directory raises ``FileNotFoundError`` naming the path and how to get
    data there; no image in the directory (or in ``ann_file``) raises
    :class:`~mmtinyvim.datasets.checks.EmptyDatasetError`.

    A label map with a value outside 0-150 other than 255, with several
    channels (an RGB rendering), or of another size than its image, raises
    :class:`LabelMapError` naming the file, the values or sizes and what is
    valid when its sample is loaded: a :class:`CheckSegLabels` is put after
    each ``LoadAnnotations`` of the pipeline.

    A missing or undecodable image or label map: see
    :class:`~mmtinyvim.datasets.checks.BadImagePolicy`. mmseg's validation
    sets keep ``test_mode=False``, so an image directory named
    ``validation`` / ``testing`` (``val`` / ``test``) also counts as an
    evaluation set, where such a file is an error; training sets skip it
    with a warning. ``on_bad_image='skip'`` / ``'raise'`` decides
    explicitly.
    """

    file_keys = (('img_path', 'image'), ('seg_map_path', 'label map'))

    def __init__(self, *args, on_bad_image=None, max_bad_in_a_row=10,
                 **kwargs):
        self._init_bad_image_policy(on_bad_image, max_bad_in_a_row)
        super().__init__(*args, **kwargs)
        self._check_bad_image_policy()
        self._guard_label_loading()

    def _guard_label_loading(self):
        transforms = self.pipeline.transforms
        for index in range(len(transforms) - 1, -1, -1):
            if not isinstance(transforms[index], LoadAnnotations):
                continue
            following = transforms[index + 1:index + 2]
            if not (following and isinstance(following[0], CheckSegLabels)):
                transforms.insert(index + 1, CheckSegLabels(
                    len(self.metainfo['classes']), self.ignore_index))

    def _is_evaluation_split(self):
        img_dir = os.path.normpath(self.data_prefix.get('img_path', ''))
        return os.path.basename(img_dir) in EVALUATION_DIRS

    def _sample_source(self):
        return (self.ann_file or
                f'the image directory {self.data_prefix.get("img_path")}')

    def load_data_list(self):
        img_dir = self.data_prefix.get('img_path', '')
        require_paths('ade', self.data_root, {
            'ADE20K image directory': img_dir,
            'ADE20K annotation directory':
            self.data_prefix.get('seg_map_path', ''),
            'ADE20K split file': self.ann_file,
        })
        data_list = super().load_data_list()
        source = (f'ADE20K split file {self.ann_file}' if self.ann_file else
                  f'ADE20K image directory {img_dir}')
        require_samples(data_list, source, f'"*{self.img_suffix}" image')
        return data_list
