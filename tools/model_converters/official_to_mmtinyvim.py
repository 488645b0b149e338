"""Convert an official TinyViM / MobileMamba ImageNet checkpoint.

    python tools/model_converters/official_to_mmtinyvim.py SRC DST \
        --family tinyvim|mobilemamba [--to classifier|backbone] [--ema]

``--to classifier`` (default) writes an mmpretrain checkpoint of the
``ImageClassifier`` in configs/<family>_*_in1k.py (``backbone.*``,
``head.*`` keys, inside ``state_dict``), usable with tools/test.py or
``load_from``. ``--to backbone`` writes the bare backbone weights (classifier
dropped, official names) for ``init_cfg=dict(type='Pretrained', ...)``; the
backbones also read the official file directly.

SRC may be the official training dict (TinyViM ``model`` / ``model_ema``,
MobileMamba ``net`` / ``net_E``) or a flat state dict; ``--ema`` takes the
EMA weights where the file has them.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from family import FAMILIES, family_module  # noqa: E402

from mmtinyvim.utils.checkpoint import (safe_torch_load,  # noqa: E402
                                        unwrap_state_dict)


def convert(src: str, dst: str, family: str, to: str = 'classifier',
            ema: bool = False) -> dict:
    module = family_module(family)
    state_dict = unwrap_state_dict(safe_torch_load(src), prefer_ema=ema)
    if to == 'classifier':
        state_dict = module.convert_official_classifier(state_dict)
        out = dict(state_dict=state_dict,
                   meta=dict(converted_from=os.path.basename(src),
                             family=family, ema=ema))
    elif to == 'backbone':
        out = {k: v for k, v in state_dict.items()
               if not k.startswith(module.CLASSIFIER_PREFIXES)}
        if not out:
            raise ValueError(f'{src} holds no backbone weights')
    else:
        raise ValueError(f"to={to!r}; valid: 'classifier', 'backbone'")
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--family', required=True, choices=FAMILIES)
    parser.add_argument('--to', default='classifier',
                        choices=('classifier', 'backbone'))
    parser.add_argument('--ema', action='store_true',
                        help='take the EMA weights (model_ema / net_E)')
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.family, args.to, args.ema)
    except (FileNotFoundError, RuntimeError, TypeError, ValueError) as err:
        sys.exit(f'error: {err}')
    count = len(out['state_dict'] if args.to == 'classifier' else out)
    print(f'wrote {count} tensors to {args.dst}')


if __name__ == '__main__':
    main()
