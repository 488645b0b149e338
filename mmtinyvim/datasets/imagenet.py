"""mmpretrain's ImageNet with clear errors for missing or empty data."""
from mmpretrain.datasets import ImageNet
from mmpretrain.registry import DATASETS

from .checks import require_paths, require_samples


@DATASETS.register_module()
class CheckedImageNet(ImageNet):
    """``ImageNet`` (``meta/<split>.txt`` when present, else class folders)
    that fails early and clearly: a missing image directory or annotation
    file raises ``FileNotFoundError`` naming the path and how to get data
    there; no sample raises
    :class:`~mmtinyvim.datasets.checks.EmptyDatasetError`."""

    def load_data_list(self):
        require_paths('imagenet', self.data_root, {
            'ImageNet image directory': self.img_prefix,
            'ImageNet annotation file': self.ann_file,
        })
        data_list = super().load_data_list()
        source = (f'ImageNet annotation file {self.ann_file}' if self.ann_file
                  else f'ImageNet image directory {self.img_prefix}')
        require_samples(data_list, source, 'image')
        return data_list
