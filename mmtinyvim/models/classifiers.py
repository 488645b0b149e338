"""The ImageNet classifiers of every variant as mmpretrain models.

``classifier_cfg('tinyvim-s')`` is the model part of an mmpretrain config that
reproduces the official classification network (the parity tests, the
benchmark and the FLOP tool build it from here).
"""
import torch.nn as nn

FAMILIES = {
    'tinyvim': ('TinyViM', 'TinyViMClsHead', ('s', 'b', 'l')),
    'mobilemamba': ('MobileMamba', 'MobileMambaClsHead',
                    ('t2', 't4', 's6', 'b1', 'b2', 'b4')),
}
VARIANTS = tuple(f'{family}-{arch}' for family, (_, _, archs)
                 in FAMILIES.items() for arch in archs)


def parse_variant(name: str):
    """'tinyvim-s' -> ('tinyvim', 's'); refuses unknown names."""
    family, _, arch = name.lower().partition('-')
    if family not in FAMILIES or arch not in FAMILIES[family][2]:
        raise ValueError(f'Unknown variant {name!r}; valid: '
                         f'{", ".join(VARIANTS)}')
    return family, arch


def backbone_class(family: str):
    from mmtinyvim.models.backbones import MobileMamba, TinyViM
    return {'tinyvim': TinyViM, 'mobilemamba': MobileMamba}[family]


def paper_resolution(name: str) -> int:
    family, arch = parse_variant(name)
    if family == 'tinyvim':
        return 224
    return backbone_class(family).arch_zoo[arch]['img_size']


def classifier_cfg(name: str, num_classes: int = 1000, **backbone_kwargs):
    """mmpretrain ``ImageClassifier`` config of the official classifier."""
    family, arch = parse_variant(name)
    backbone_type, head_type, _ = FAMILIES[family]
    backbone = dict(type=backbone_type, arch=arch, out_indices=(3, ),
                    **backbone_kwargs)
    channels = backbone_class(family)(arch=arch, out_indices=(3, )
                                      ).out_channels[-1]
    head = dict(type=head_type, num_classes=num_classes,
                in_channels=channels,
                loss=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if family == 'tinyvim':
        head['distillation'] = True  # the released models carry dist_head
    return dict(type='ImageClassifier', backbone=backbone,
                neck=dict(type='GlobalAveragePooling'), head=head)


def build_classifier(name: str, num_classes: int = 1000, **backbone_kwargs):
    """(model, paper resolution) of a variant's classifier."""
    import mmtinyvim  # noqa: F401  (registration)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = classifier_cfg(name, num_classes, **backbone_kwargs)
    # whatever scope a Runner left current, this is an mmpretrain model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    return model, paper_resolution(name)


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as a plain ``images -> logits`` module (for
    export, benchmarks, CUDA graphs)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, images):
        return self.classifier(images, mode='tensor')


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Re-parameterise every part of ``model`` that supports it."""
    for module in model.modules():
        if module is not model and hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return model
