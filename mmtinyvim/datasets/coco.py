"""mmdet's CocoDataset with clear errors for missing, empty or broken data."""
import json
import logging

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from .checks import (BadImagePolicy, EmptyDatasetError, annotation_json_error,
                     require_paths, require_samples)

SHOWN_IDS = 5


@DATASETS.register_module()
class CheckedCocoDataset(BadImagePolicy, CocoDataset):
    """``CocoDataset`` that fails early and clearly.

    * a missing annotation file or image directory raises
      ``FileNotFoundError`` naming the path and how to get data there;
    * an annotation file that is not valid JSON raises
      :class:`~mmtinyvim.datasets.checks.AnnotationFileError` naming the
      file, line and column;
    * an annotation file whose ``images`` list is empty, or a training set
      that ``filter_cfg`` empties completely (no image with an annotation
      of the dataset's classes), raises :class:`EmptyDatasetError`; images
      that ``filter_cfg`` drops from a training set are reported in one
      warning with their count and first ids;
    * a missing or undecodable image: see
      :class:`~mmtinyvim.datasets.checks.BadImagePolicy` (skipped with a
      warning in training, an error in evaluation, ``test_mode=True``).

    Args:
        on_bad_image (str, optional): 'skip', 'raise' or None (auto).
        max_bad_in_a_row (int): unreadable training samples tolerated in a
            row. Defaults to 10.

    Everything else, arguments included, is ``CocoDataset``.
    """

    def __init__(self, *args, on_bad_image=None, max_bad_in_a_row=10,
                 **kwargs):
        self._init_bad_image_policy(on_bad_image, max_bad_in_a_row)
        super().__init__(*args, **kwargs)
        self._check_bad_image_policy()

    def load_data_list(self):
        require_paths('coco', self.data_root, {
            'COCO annotation file': self.ann_file,
            'COCO image directory': self.data_prefix.get('img', ''),
        })
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as err:
            raise annotation_json_error(self.ann_file, err) from None
        require_samples(data_list, f'COCO annotation file {self.ann_file}',
                        'image (its "images" list is empty)')
        return data_list

    def filter_data(self):
        kept = super().filter_data()
        if not kept:
            raise EmptyDatasetError(
                f'filter_cfg={self.filter_cfg} removed all '
                f'{len(self.data_list)} images of {self.ann_file}: none has '
                f'an annotation of the {len(self.metainfo["classes"])} '
                'dataset classes (matched by category name) with both sides '
                '>= min_size.')
        if len(kept) < len(self.data_list):
            self._report_dropped(kept)
        return kept

    def _report_dropped(self, kept):
        """One warning for all images ``filter_cfg`` dropped."""
        kept_ids = {info['img_id'] for info in kept}
        min_size = self.filter_cfg.get('min_size', 0)
        small, unlabelled = [], []
        for info in self.data_list:
            if info['img_id'] in kept_ids:
                continue
            if min(info['width'], info['height']) < min_size:
                small.append(info['img_id'])
            else:
                unlabelled.append(info['img_id'])
        reasons = []
        if unlabelled:
            reasons.append(
                f'{len(unlabelled)} without an annotation of the '
                f'{len(self.metainfo["classes"])} dataset classes '
                f'(filter_empty_gt), img_id {_first(unlabelled)}')
        if small:
            reasons.append(f'{len(small)} with a side < min_size={min_size}, '
                           f'img_id {_first(small)}')
        print_log(
            f'filter_cfg={self.filter_cfg} drops {len(small + unlabelled)} '
            f'of the {len(self.data_list)} training images of '
            f'{self.ann_file}: ' + '; '.join(reasons) + '.',
            logger='current', level=logging.WARNING)


def _first(ids):
    shown = ', '.join(map(str, ids[:SHOWN_IDS]))
    return shown + (f', ... (+{len(ids) - SHOWN_IDS} more)'
                    if len(ids) > SHOWN_IDS else '')
