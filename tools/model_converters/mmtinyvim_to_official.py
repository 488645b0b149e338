"""Convert an mmpretrain TinyViM / MobileMamba classifier checkpoint back to
the official layout.

    python tools/model_converters/mmtinyvim_to_official.py SRC DST \
        --family tinyvim|mobilemamba [--arch s]

SRC: a checkpoint of the ``ImageClassifier`` in configs/<family>_*_in1k.py
(written by training or by official_to_mmtinyvim.py). DST: TinyViM as
``{'model': state_dict}`` (what its main.py saves and eval.sh reads),
MobileMamba as a flat state dict (like its released ``.pth`` files). The
family is checked against the key names and, with ``--arch``, the variant
against the tensor shapes, before anything is written.
"""
import argparse
import sys

import torch

from mmtinyvim.models.checkpoint_family import (check_arch, check_family,
                                               describe, family_module)
from mmtinyvim.models.zoo import FAMILIES
from mmtinyvim.utils.checkpoint import safe_torch_load, unwrap_state_dict
from mmtinyvim.utils.files import atomic_replace, refuse_same_file
from mmtinyvim.utils.progress import Steps


def convert(src: str, dst: str, family: str, arch: str = None) -> dict:
    return _convert(src, dst, family, arch)[0]


def _convert(src, dst, family, arch=None, progress=None):
    """(the official state dict written, the zoo variants it fits);
    ``progress.done()`` after loading, checking and writing."""
    step = progress.done if progress else (lambda: None)
    refuse_same_file(src, dst, 'output DST', 'checkpoint SRC')
    module = family_module(family)
    state_dict = unwrap_state_dict(safe_torch_load(src))
    step()
    check_family(state_dict, family, src, prefix='backbone.')
    archs = check_arch(state_dict, family, arch, src, prefix='backbone.')
    step()
    official = module.to_official_classifier(state_dict)
    out = {'model': official} if family == 'tinyvim' else official
    # never a half-written DST, even when it replaces an older file
    atomic_replace(dst, lambda tmp: torch.save(out, tmp))
    step()
    return official, archs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmpretrain classifier checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--family', required=True, choices=list(FAMILIES))
    parser.add_argument('--arch', help='the variant the file must be (e.g. '
                        's, t2); checked against its tensor shapes')
    args = parser.parse_args(argv)
    try:
        official, archs = _convert(
            args.src, args.dst, args.family, args.arch,
            progress=Steps(3, f'converting {args.src}: load, check, write'))
    except (FileNotFoundError, RuntimeError, TypeError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(official)} tensors ({describe(args.family, archs)}) '
          f'to {args.dst}')


if __name__ == '__main__':
    main()
