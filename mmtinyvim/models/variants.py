"""One record per variant: what a variant is besides its architecture
(published numbers, official weights and where they are published).

Plain data with no backbone or OpenMMLab import, so that anything (the
pretrained-file checks the backbones run, the zoo generator, a torch-only
user) can read it; :mod:`mmtinyvim.models.zoo` joins it to the families.
"""
from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class OfficialWeights:
    """An ImageNet checkpoint as the official repository publishes it."""
    file: str  # the file name the configs load (checkpoints/<file>)
    description: str
    url: str  # the published file or folder, as the official README links it
    config: str  # the config (without variant) whose recipe trained it


@dataclass(frozen=True)
class Result:
    """A published result of one recipe, as the paper or the official README
    gives it: it is not a result of this repository's configs."""
    recipe: str  # 'released': the official recipe; 'adapted': ours, closest
    source: str  # where the number is published
    metrics: Dict[str, float]


@dataclass(frozen=True)
class Variant:
    """Everything about one variant that is not its architecture (that is
    its backbone's ``arch_zoo`` entry): adding a variant is its arch_zoo
    entry, this record and its configs. metafile.yml, docs/model_zoo.md and
    the README's zoo table are generated from these records
    (tools/misc/generate_zoo.py)."""
    title: str  # as the papers write it
    # ImageNet-1k as published: params (M) and FLOPs (G; TinyViM: GMACs as
    # its README counts them, MobileMamba: GFLOPs, paper Tab. 3)
    params_m: float
    flops_g: float
    # the official file the detection/segmentation configs start from
    backbone_weights: str
    weights: Tuple[OfficialWeights, ...]
    # published results per config kind: the config name without the
    # variant, e.g. 'maskrcnn_coco' for configs/maskrcnn_tinyvim_s_coco.py;
    # a config without an entry has no published result (recipe 'adapted')
    results: Dict[str, Result]


_TINYVIM_REPO = 'https://github.com/xwmaxwma/TinyViM'
_MOBILEMAMBA_REPO = 'https://github.com/lewandofskee/MobileMamba'
_DRIVE_FOLDER = 'https://drive.google.com/drive/folders/'
_DRIVE_FILE = 'https://drive.google.com/file/d/'
REPOSITORIES = {'tinyvim': _TINYVIM_REPO, 'mobilemamba': _MOBILEMAMBA_REPO}

_TV_300E = 'README'
_TV_1000E = 'README (no 1000-epoch script released)'
_MM_300E = 'paper Tab. 3 (best-epoch EMA in the log)'
_MM_KD = 'paper Tab. 3 (log not released)'


def _top1(recipe, source, value):
    return Result(recipe, source, {'Top 1 Accuracy': value})


def _det(recipe, source, box, mask=None):
    metrics = {'box AP': box}
    if mask is not None:
        metrics['mask AP'] = mask
    return Result(recipe, source, metrics)


def _seg(recipe, source, miou):
    return Result(recipe, source, {'mIoU': miou})


def _tinyvim_weights(arch, folders):
    return tuple(
        OfficialWeights(f'tinyvim_{arch}_{epochs}.pth',
                        f'TinyViM-{arch.upper()} ({epochs[:-1]} epochs)',
                        _DRIVE_FOLDER + folder,
                        'in1k' if epochs == '300e' else '1000e_in1k')
        for epochs, folder in folders)


def _mobilemamba_weights(arch, file_id):
    # the 300-epoch weights without distillation (the rows without the
    # dagger), as the official downstream configs use
    return (OfficialWeights(f'mobilemamba_{arch}.pth',
                            f'MobileMamba-{arch.upper()}',
                            _DRIVE_FILE + file_id, 'in1k'), )


RECORDS: Dict[str, Variant] = {
    'tinyvim-s': Variant(
        'TinyViM-S', 5.6, 0.9, 'tinyvim_s_1000e.pth',
        # only the 1000-epoch weights have a link
        _tinyvim_weights('s', [('1000e',
                                '1cLgX_Mlk9W5_nMtgwmLC71ap-RlvT7eW')]),
        {'in1k': _top1('released', _TV_300E, 79.2),
         '1000e_in1k': _top1('adapted', _TV_1000E, 80.3)}),
    'tinyvim-b': Variant(
        'TinyViM-B', 11.0, 1.5, 'tinyvim_b_300e.pth',
        _tinyvim_weights('b', [('300e', '1eo9RBT186E11pJFOO8uOi9S5GoR0PosS'),
                               ('1000e',
                                '1nZAz0nt8Ztk7YqXbrXW8BZyPZZ49HmVx')]),
        {'in1k': _top1('released', _TV_300E, 81.2),
         '1000e_in1k': _top1('adapted', _TV_1000E, 82.1),
         'maskrcnn_coco': _det('released', 'README', 42.3, 38.7),
         'fpn_ade20k': _seg('released', 'README', 41.9)}),
    'tinyvim-l': Variant(
        'TinyViM-L', 31.7, 4.7, 'tinyvim_l_300e.pth',
        _tinyvim_weights('l', [('300e', '1BtxDPRyll8FVbZfbdjH-oDJU7dYKaSfY'),
                               ('1000e',
                                '1-nfZiEMix8Xd625M2UVFXrujIIV-K2_2')]),
        {'in1k': _top1('released', _TV_300E, 83.3),
         '1000e_in1k': _top1('adapted', _TV_1000E, 83.6),
         'maskrcnn_coco': _det('released', 'README', 44.5, 40.7),
         'fpn_ade20k': _seg('released', 'README', 44.2)}),
    'mobilemamba-t2': Variant(
        'MobileMamba-T2', 8.8, 0.255, 'mobilemamba_t2.pth',
        _mobilemamba_weights('t2', '1LXh5wjVEUu5Kj1foclC9zmlKsy7JpMQ-'),
        {'in1k': _top1('released', _MM_300E, 73.6),
         'kd1000e_in1k': _top1('released', _MM_KD, 76.9)}),
    'mobilemamba-t4': Variant(
        'MobileMamba-T4', 14.2, 0.413, 'mobilemamba_t4.pth',
        _mobilemamba_weights('t4', '17-5Q93_cEhBYMDzWTq4sDcc4_c_ezwpd'),
        {'in1k': _top1('released', _MM_300E, 76.1),
         'kd1000e_in1k': _top1('released', _MM_KD, 78.9)}),
    'mobilemamba-s6': Variant(
        'MobileMamba-S6', 15.0, 0.652, 'mobilemamba_s6.pth',
        _mobilemamba_weights('s6', '13en_zNB2wuHmnHKZMUQDe4KizlaTCHbP'),
        {'in1k': _top1('released', _MM_300E, 78.0),
         'kd1000e_in1k': _top1('released', _MM_KD, 80.7)}),
    'mobilemamba-b1': Variant(
        'MobileMamba-B1', 17.1, 1.080, 'mobilemamba_b1.pth',
        _mobilemamba_weights('b1', '1ODO1XM2luMfczbDLJxHrEl-ie7yUscAC'),
        {'in1k': _top1('released', _MM_300E, 79.9),
         'kd1000e_in1k': _top1('released', _MM_KD, 82.2),
         'maskrcnn_coco': _det('released', 'log, paper Tab. 4', 40.6, 37.4),
         'retinanet_coco': _det('released', 'log, paper Tab. 4', 39.6),
         'ssdlite320_coco': _det('released', 'log, paper Tab. 5', 24.0),
         'ssdlite512_coco': _det('released', 'log, paper Tab. 5', 29.5),
         'deeplabv3_ade20k': _seg(
             'adapted', 'paper Tab. A8 (no config released)', 36.7),
         'fpn_ade20k': _seg(
             'adapted', 'paper Tab. A8 (no config released)', 40.7),
         'pspnet_ade20k': _seg(
             'adapted', 'paper Tab. A8 (no config released)', 36.5)}),
    'mobilemamba-b2': Variant(
        'MobileMamba-B2', 17.1, 2.427, 'mobilemamba_b2.pth',
        _mobilemamba_weights('b2', '1tJJZqeP09D_IAKKFuQtJQOYm4eNGjr1r'),
        {'in1k': _top1('released', _MM_300E, 81.6),
         'kd1000e_in1k': _top1('released', _MM_KD, 83.3)}),
    'mobilemamba-b4': Variant(
        'MobileMamba-B4', 17.1, 4.313, 'mobilemamba_b4.pth',
        _mobilemamba_weights('b4', '1MiGLHSldK2JpbQEe-7VlmFsaCdugDnYR'),
        {'in1k': _top1('released', _MM_300E, 82.5),
         'kd1000e_in1k': _top1('released', _MM_KD, 83.6),
         'maskrcnn_coco': _det(
             'adapted', 'paper Tab. A7 (no config released)', 40.1, 36.9),
         'retinanet_coco': _det(
             'adapted', 'paper Tab. A7 (no config released)', 39.5),
         'ssdlite320_coco': _det(
             'adapted', 'paper Tab. A6 (no config released)', 23.9),
         'ssdlite512_coco': _det(
             'adapted', 'paper Tab. A6 (no config released)', 29.1),
         'deeplabv3_ade20k': _seg('released', 'log, paper Tab. 6', 36.6),
         'fpn_ade20k': _seg('released', 'log, paper Tab. 6', 42.5),
         'pspnet_ade20k': _seg('released', 'log, paper Tab. 6', 36.9)}),
}

# What the families' official weights are, besides their files: the licence
# each repository states (SPDX id; the TinyViM repository states none, see
# LICENSE) and how its scripts evaluate on ImageNet-1k
# (docs/recipes.md#imagenet-tinyvim, #imagenet-mobilemamba: resize to
# resolution / crop_pct, bicubic, centre crop, ImageNet mean/std; the
# configs' test pipelines restate these in 0-255 units).
LICENCES = {'tinyvim': 'unknown', 'mobilemamba': 'mit'}
IMAGENET_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images scaled to [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Evaluation:
    """The official ImageNet test transform of a family's weights."""
    crop_pct: float
    interpolation: str
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD


EVALUATION = {'tinyvim': Evaluation(0.875, 'bicubic'),
              'mobilemamba': Evaluation(0.875, 'bicubic')}
