"""mmseg's ADE20KDataset with clear errors for missing or empty data."""
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .checks import require_paths, require_samples


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """``ADE20KDataset`` (``reduce_zero_label=True``: label 0 is ignored,
    k becomes k-1) that fails early and clearly: a missing image or label
    directory raises ``FileNotFoundError`` naming the path and how to get
    data there; no image in the directory (or in ``ann_file``) raises
    :class:`~mmtinyvim.datasets.checks.EmptyDatasetError`."""

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
