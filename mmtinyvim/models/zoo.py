"""The one table of families and variants.

Everything that names a family or a variant reads it from here: the
classifier configs (:func:`classifier_cfg`), the checkpoint converters
(:mod:`mmtinyvim.models.checkpoint_family`), the benchmark, the ONNX export,
the FLOP tool and the tests. The variants of a family are the keys of its
backbone's ``arch_zoo``: a new variant is one ``arch_zoo`` entry, its
record in :data:`RECORDS` (published results, official weights) and its
configs.
"""
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, Optional, Tuple, Type

from ..stack import check_stack
from .backbones import mobilemamba, tinyvim
from .backbones.base import MambaBackboneBase
from .variants import (REPOSITORIES, RECORDS, OfficialWeights,  # noqa: F401
                       Result, Variant)


@dataclass(frozen=True)
class Family:
    name: str
    module: ModuleType  # the backbone's module (official-format converters)
    backbone: Type[MambaBackboneBase]
    head_type: str  # the mmpretrain head of its ImageNet classifier
    # top-level backbone modules that only this family's checkpoints have
    markers: Tuple[str, ...]
    # the released classifiers carry a distillation head (TinyViM's
    # dist_head, averaged with head at test time; docs/recipes.md#imagenet-tinyvim)
    distillation_head: bool
    # train/test resolution when the arch_zoo entry has no 'img_size'
    default_resolution: Optional[int] = None

    @property
    def archs(self) -> Tuple[str, ...]:
        return tuple(self.backbone.arch_zoo)

    @property
    def classifier_prefixes(self) -> Tuple[str, ...]:
        """Official classifier keys that have no place in the backbone."""
        return self.module.CLASSIFIER_PREFIXES

    def resolution(self, arch: str) -> int:
        return self.backbone.arch_zoo[arch].get('img_size',
                                                self.default_resolution)


FAMILIES: Dict[str, Family] = {
    'tinyvim': Family(
        'tinyvim', tinyvim, tinyvim.TinyViM, 'TinyViMClsHead',
        markers=('network.', ), distillation_head=True,
        # every variant at 224 (docs/recipes.md#tinyvim-variants)
        default_resolution=224),
    'mobilemamba': Family(
        'mobilemamba', mobilemamba, mobilemamba.MobileMamba,
        'MobileMambaClsHead', markers=('blocks1.', 'blocks2.', 'blocks3.'),
        # per variant: arch_zoo[arch]['img_size']
        distillation_head=False),
}
VARIANTS = tuple(f'{family}-{arch}' for family, spec in FAMILIES.items()
                 for arch in spec.archs)


@dataclass(frozen=True)
class Published:
    """ImageNet-1k numbers as the papers / official READMEs give them (a
    view of :data:`RECORDS`)."""
    top1: float  # 300 epochs, no distillation
    top1_long: float  # TinyViM: 1000 epochs; MobileMamba: 1000 epochs + KD
    params_m: float
    flops_g: float


def _published(record: Variant) -> Published:
    results = record.results
    long = results.get('1000e_in1k') or results['kd1000e_in1k']
    return Published(results['in1k'].metrics['Top 1 Accuracy'],
                     long.metrics['Top 1 Accuracy'], record.params_m,
                     record.flops_g)


PUBLISHED: Dict[str, Published] = {
    name: _published(record) for name, record in RECORDS.items()}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f'Unknown family {name!r}; valid: '
                         f'{", ".join(FAMILIES)}')
    return FAMILIES[name]


def parse_variant(name: str) -> Tuple[str, str]:
    """'tinyvim-s' -> ('tinyvim', 's'); refuses unknown names."""
    family, _, arch = name.lower().partition('-')
    if family not in FAMILIES or arch not in FAMILIES[family].archs:
        raise ValueError(f'Unknown variant {name!r}; valid: '
                         f'{", ".join(VARIANTS)}')
    return family, arch


def backbone_class(family: str) -> Type[MambaBackboneBase]:
    return get_family(family).backbone


def paper_resolution(name: str) -> int:
    """The resolution the variant's official weights were trained and
    tested at."""
    family, arch = parse_variant(name)
    return FAMILIES[family].resolution(arch)


def classifier_cfg(name: str, num_classes: int = 1000, **backbone_kwargs):
    """mmpretrain ``ImageClassifier`` config of the official classifier (the
    model part of configs/<family>_<arch>_in1k.py)."""
    family, arch = parse_variant(name)
    spec = FAMILIES[family]
    backbone = dict(type=spec.backbone.__name__, arch=arch,
                    out_indices=(3, ), **backbone_kwargs)
    channels = spec.backbone(arch=arch, out_indices=(3, )).out_channels[-1]
    head = dict(type=spec.head_type, num_classes=num_classes,
                in_channels=channels,
                loss=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if spec.distillation_head:
        head['distillation'] = True
    return dict(type='ImageClassifier', backbone=backbone,
                neck=dict(type='GlobalAveragePooling'), head=head)


def build_classifier(name: str, num_classes: int = 1000, **backbone_kwargs):
    """(model, paper resolution) of a variant's mmpretrain classifier
    (:func:`mmtinyvim.create_model` gives the plain-PyTorch one)."""
    check_stack(('mmengine', 'mmcv', 'mmpretrain'),
                what='build_classifier (an mmpretrain ImageClassifier)')
    # imported here: the table above is read with torch alone
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    cfg = classifier_cfg(name, num_classes, **backbone_kwargs)
    # whatever scope a Runner left current, this is an mmpretrain model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = PRETRAIN_MODELS.build(cfg)
    return model, paper_resolution(name)
