"""mmdet's CocoDataset with clear errors for missing or empty data."""
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .checks import EmptyDatasetError, require_paths, require_samples


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """``CocoDataset`` that fails early and clearly.

    * a missing annotation file or image directory raises
      ``FileNotFoundError`` naming the path and how to get data there;
    * an annotation file whose ``images`` list is empty, or a training set
      that ``filter_cfg`` empties completely (no image with an annotation
      of the dataset's classes), raises :class:`EmptyDatasetError`.

    Everything else, arguments included, is ``CocoDataset``.
    """

    def load_data_list(self):
        require_paths('coco', self.data_root, {
            'COCO annotation file': self.ann_file,
            'COCO image directory': self.data_prefix.get('img', ''),
        })
        data_list = super().load_data_list()
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
        return kept
