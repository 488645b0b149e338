"""mmseg's ADE20KDataset with clear errors for missing, empty or broken
data."""
import os

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .checks import BadImagePolicy, require_paths, require_samples

EVALUATION_DIRS = ('validation', 'testing', 'val', 'test')


@DATASETS.register_module()
class CheckedADE20KDataset(BadImagePolicy, ADE20KDataset):
    """``ADE20KDataset`` (``reduce_zero_label=True``: label 0 is ignored,
    k becomes k-1) that fails early and clearly: a missing image or label
    directory raises ``FileNotFoundError`` naming the path and how to get
    data there; no image in the directory (or in ``ann_file``) raises
    :class:`~mmtinyvim.datasets.checks.EmptyDatasetError`.

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
