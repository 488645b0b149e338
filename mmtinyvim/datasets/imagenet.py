"""mmpretrain's ImageNet with clear errors for missing, empty or broken
data."""
import os

from mmpretrain.datasets import ImageNet
from mmpretrain.registry import DATASETS, TRANSFORMS

from .checks import BadImagePolicy, require_paths, require_samples
from .size_limit import toolbox_check

# the test pipelines' image-size check, with the mmpretrain limit
TRANSFORMS.register_module(module=toolbox_check('mmpretrain'))

EVALUATION_DIRS = ('val', 'test')


@DATASETS.register_module()
class CheckedImageNet(BadImagePolicy, ImageNet):
    """``ImageNet`` (``meta/<split>.txt`` when present, else class folders)
    that fails early and clearly: a missing image directory or annotation
    file raises ``FileNotFoundError`` naming the path and how to get data
    there; no sample raises
    :class:`~mmtinyvim.datasets.checks.EmptyDatasetError`.

    A missing or undecodable image: see
    :class:`~mmtinyvim.datasets.checks.BadImagePolicy`. The ``val`` and
    ``test`` splits (image directory ``val`` / ``test``) are evaluation
    sets, where such a file is an error; ``train`` skips it with a warning.
    ``on_bad_image='skip'`` / ``'raise'`` decides explicitly.
    """

    def __init__(self, *args, on_bad_image=None, max_bad_in_a_row=10,
                 **kwargs):
        self._init_bad_image_policy(on_bad_image, max_bad_in_a_row)
        super().__init__(*args, **kwargs)
        self._check_bad_image_policy()

    def _is_evaluation_split(self):
        img_dir = os.path.normpath(self.img_prefix or '')
        return os.path.basename(img_dir) in EVALUATION_DIRS

    def _sample_source(self):
        return self.ann_file or f'the image directory {self.img_prefix}'

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
