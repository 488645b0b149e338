"""Convert a TinyViM / MobileMamba ImageNet classifier to LiteRT (.tflite)
for mobile, through litert-torch, checked with the LiteRT interpreter.

    pip install litert-torch   # brings ai-edge-litert (the runtime)
    python tools/deployment/pytorch2litert.py mobilemamba-t2 \\
        --checkpoint mobilemamba_t2.pth --shape 192 192 --out mm_t2.tflite \\
        --verify

Same model as ``pytorch2onnx.py --classifier --deploy``: the 'torch' scan,
re-parameterised, input the normalised (1, 3, H, W) float32 image (NCHW, as
PyTorch), output the logits. litert-torch pulls in transformers, whose
current releases break mmpretrain's imports: install it in its own
environment without transformers (``pip uninstall transformers``).
"""
import argparse
import os
import sys

import numpy as np
import torch

from mmtinyvim.engine import switch_to_deploy
from mmtinyvim.models.zoo import VARIANTS, paper_resolution
from mmtinyvim.utils.files import atomic_replace, refuse_same_file

# run as a script, its own folder is on the path (as for tools/test.py)
from pytorch2onnx import build_classifier_for_export  # noqa: E402


def convert(variant, out, checkpoint=None, shape=None):
    """Write ``out`` (.tflite); returns (the PyTorch model, the input)."""
    import litert_torch
    refuse_same_file(checkpoint, out, '--out', '--checkpoint')
    model, _ = build_classifier_for_export(variant, checkpoint)
    model = switch_to_deploy(model).eval()
    shape = tuple(shape or (paper_resolution(variant), ) * 2)
    images = torch.randn(1, 3, *shape, generator=torch.Generator()
                         .manual_seed(0))
    edge = litert_torch.convert(model, (images, ))
    atomic_replace(out, edge.export)
    return model, images


def compare_with_litert(model, path, images):
    """max |LiteRT - PyTorch| / std(PyTorch) of the logits."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]['index'],
                           images.numpy())
    interpreter.invoke()
    result = interpreter.get_tensor(
        interpreter.get_output_details()[0]['index'])
    with torch.no_grad():
        expected = model(images).numpy()
    if result.shape != expected.shape:
        raise RuntimeError(f'LiteRT output {result.shape} vs PyTorch '
                           f'{expected.shape}')
    return float(np.abs(result - expected).max() / expected.std())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('variant', type=str.lower, choices=VARIANTS)
    parser.add_argument('--out', required=True, help='.tflite to write')
    parser.add_argument('--checkpoint', help='mmpretrain or official '
                        'classifier weights, loaded strictly')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--verify', action='store_true')
    parser.add_argument('--tolerance', type=float, default=1e-4)
    args = parser.parse_args(argv)
    model, images = convert(args.variant, args.out, args.checkpoint,
                            args.shape)
    print(f'wrote {args.out}')
    if args.verify:
        error = compare_with_litert(model, args.out, images)
        print(f'logits: max|LiteRT - PyTorch| / std = {error:.2e}')
        if not error <= args.tolerance:
            raise SystemExit(f'LiteRT differs from PyTorch: {error:.2e} > '
                             f'{args.tolerance:.0e}')
    return args.out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ImportError, RuntimeError, ValueError) as err:
        sys.exit(f'error: {err}')
