"""The dataset meta (class names, palette) models are drawn and saved with:
from a config's test dataset, or ImageNet's for converted classifiers."""


def dataset_meta_from_config(cfg):
    """``dict(classes=..., palette=...)`` of the config's test dataset: the
    ``METAINFO`` of the dataset class it names, updated by the dataset's
    ``metainfo`` in the config; ``None`` when the config names none."""
    dataset = cfg.get('test_dataloader', {}).get('dataset')
    if not dataset:
        return None
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        from mmdet.registry import DATASETS
    elif scope == 'mmseg':
        from mmseg.registry import DATASETS
    else:
        from mmpretrain.registry import DATASETS
    while 'type' in dataset and dataset.get('dataset'):  # wrappers
        dataset = dataset['dataset']
    meta = {}
    dataset_type = dataset.get('type')
    dataset_class = (DATASETS.get(dataset_type)
                     if isinstance(dataset_type, str) else dataset_type)
    if dataset_class is not None:
        meta.update(getattr(dataset_class, 'METAINFO', {}))
    meta.update(dataset.get('metainfo') or {})
    meta = {k.lower(): v for k, v in meta.items()}
    return meta if meta.get('classes') else None


def imagenet_dataset_meta():
    """``dict(classes=<the 1000 ImageNet-1k names>)``, mmpretrain's
    ``ImageNet.METAINFO`` (what an mmpretrain run stores in its
    checkpoints' ``meta.dataset_meta``)."""
    from mmpretrain.datasets import ImageNet
    return {k.lower(): list(v) for k, v in ImageNet.METAINFO.items()}
