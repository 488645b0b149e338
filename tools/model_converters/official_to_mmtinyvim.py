"""Convert an official TinyViM / MobileMamba ImageNet checkpoint.

    python tools/model_converters/official_to_mmtinyvim.py SRC DST \
        --family tinyvim|mobilemamba [--arch s] [--to classifier|backbone] \
        [--ema]

``--to classifier`` (default) writes an mmpretrain checkpoint of the
``ImageClassifier`` in configs/<family>_*_in1k.py (``backbone.*``,
``head.*`` keys, inside ``state_dict``; ``meta.dataset_meta`` holds the
ImageNet class names), usable with tools/test.py, the image demo or
``load_from``. ``--to backbone`` writes the bare backbone weights (classifier
dropped, official names) for ``init_cfg=dict(type='Pretrained', ...)``; the
backbones also read the official file directly.

SRC may be the official training dict (TinyViM ``model`` / ``model_ema``,
MobileMamba ``net`` / ``net_E``) or a flat state dict; ``--ema`` takes the
EMA weights where the file has them.

The family is checked against the file's key names (TinyViM's ``network.*``,
MobileMamba's ``blocks1.*``...) and, with ``--arch``, the variant against its
tensor shapes; a checkpoint of another family or variant is refused before
anything is written.
"""
import argparse
import os
import sys

import torch

from mmtinyvim.datasets.meta import imagenet_dataset_meta
from mmtinyvim.models.checkpoint_family import (check_arch, check_family,
                                               describe, family_module)
from mmtinyvim.models.zoo import FAMILIES
from mmtinyvim.utils.checkpoint import safe_torch_load, unwrap_state_dict
from mmtinyvim.utils.files import atomic_replace, refuse_same_file
from mmtinyvim.utils.progress import Steps


def convert(src: str, dst: str, family: str, to: str = 'classifier',
            ema: bool = False, arch: str = None) -> dict:
    return _convert(src, dst, family, to, ema, arch)[0]


def _convert(src, dst, family, to='classifier', ema=False, arch=None,
             progress=None):
    """(what was written, the zoo variants the weights fit);
    ``progress.done()`` after loading, checking and writing."""
    step = progress.done if progress else (lambda: None)
    refuse_same_file(src, dst, 'output DST', 'checkpoint SRC')
    module = family_module(family)
    state_dict = unwrap_state_dict(safe_torch_load(src), prefer_ema=ema)
    step()
    check_family(state_dict, family, src)
    archs = check_arch(state_dict, family, arch, src)
    step()
    if to == 'classifier':
        state_dict = module.convert_official_classifier(state_dict)
        out = dict(state_dict=state_dict,
                   meta=dict(converted_from=os.path.basename(src),
                             family=family, arch=archs, ema=ema,
                             dataset_meta=imagenet_dataset_meta()))
    elif to == 'backbone':
        out = {k: v for k, v in state_dict.items()
               if not k.startswith(FAMILIES[family].classifier_prefixes)}
        if not out:
            raise ValueError(f'{src} holds no backbone weights')
    else:
        raise ValueError(f"to={to!r}; valid: 'classifier', 'backbone'")
    # never a half-written DST, even when it replaces an older file
    atomic_replace(dst, lambda tmp: torch.save(out, tmp))
    step()
    return out, archs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--family', required=True, choices=list(FAMILIES))
    parser.add_argument('--arch', help='the variant the file must be (e.g. '
                        's, t2); checked against its tensor shapes')
    parser.add_argument('--to', default='classifier',
                        choices=('classifier', 'backbone'))
    parser.add_argument('--ema', action='store_true',
                        help='take the EMA weights (model_ema / net_E)')
    args = parser.parse_args(argv)
    try:
        out, archs = _convert(
            args.src, args.dst, args.family, args.to, args.ema, args.arch,
            progress=Steps(3, f'converting {args.src}: load, check, write'))
    except (FileNotFoundError, RuntimeError, TypeError, ValueError) as err:
        sys.exit(f'error: {err}')
    count = len(out['state_dict'] if args.to == 'classifier' else out)
    print(f'wrote {count} tensors ({describe(args.family, archs)}) to '
          f'{args.dst}')


if __name__ == '__main__':
    main()
