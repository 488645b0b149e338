"""Convert a TinyViM / MobileMamba ImageNet classifier to LiteRT (.tflite)
for mobile, through litert-torch, checked with the LiteRT interpreter.

    bash scripts/test_mobile.sh --setup-only   # .venv-mobile: torch (CPU),
                                               # litert-torch, ai-edge-litert
    PYTHONPATH=. .venv-mobile/bin/python tools/deployment/pytorch2litert.py \\
        mobilemamba-t2 --checkpoint mobilemamba_t2.pth --out mm_t2.tflite \\
        --verify

Plain PyTorch: the tool builds :class:`mmtinyvim.models.classifier.Classifier`
(the mmpretrain classifier's layout, no OpenMMLab package needed), so it runs
in an environment of its own with torch and litert-torch only (litert-torch
brings a transformers release that breaks mmpretrain's imports: keep it out
of the OpenMMLab environment). The model is the one ``pytorch2onnx.py
--classifier --deploy`` exports: the 'torch' scan, re-parameterised; input
the normalised (1, 3, H, W) float32 image (NCHW, as PyTorch; batch and size
fixed), output the logits. ``--verify`` runs the written file in the LiteRT
interpreter on a seeded random image and prints
``max|LiteRT - PyTorch| / std(PyTorch)`` of the logits; above
``--tolerance`` the tool exits non-zero.
"""
import argparse
import sys
from importlib import metadata

import numpy as np
import torch

from mmtinyvim.models.classifier import Classifier
from mmtinyvim.models.zoo import FAMILIES, VARIANTS, paper_resolution
from mmtinyvim.utils.checkpoint import (safe_torch_load, strict_load,
                                        unwrap_state_dict)
from mmtinyvim.utils.files import atomic_replace, refuse_same_file

SCAN_BACKEND = 'torch'  # the scan made of operators the converter lowers
CONVERTER = 'litert-torch'
RUNTIME = 'ai-edge-litert'
INSTALL_HINT = ('install it in an environment of its own: bash '
                'scripts/test_mobile.sh --setup-only (or pip install '
                'litert-torch, which brings ai-edge-litert)')


def versions():
    """torch, converter and runtime versions, as the parity record names
    them."""
    found = {'torch': torch.__version__}
    for name in (CONVERTER, RUNTIME):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = 'not installed'
    return found


def build_classifier(variant, checkpoint=None):
    """The deployed classifier (re-parameterised, eval); an official or an
    mmpretrain classification checkpoint loads strictly (every key and
    shape, head included; non-finite weights refused)."""
    model = Classifier(variant, scan_backend=SCAN_BACKEND)
    if checkpoint is not None:
        state = unwrap_state_dict(safe_torch_load(checkpoint))
        if not any(k.startswith('backbone.') for k in state):
            state = FAMILIES[model.family].module \
                .convert_official_classifier(state)
        strict_load(model, state, what=f'Checkpoint {checkpoint!r}')
    # mmtinyvim.engine.switch_to_deploy, without the engine's mmengine
    # import: every module's own idempotent fold
    for module in model.modules():
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return model.eval()


def example_input(variant, shape=None):
    """The seeded (1, 3, H, W) image the conversion traces and
    ``--verify`` compares on; H x W the variant's resolution by default."""
    shape = tuple(shape or (paper_resolution(variant), ) * 2)
    if len(shape) != 2 or min(shape) < 32:
        raise ValueError(f'--shape must be H W, each >= 32, got {shape}')
    return torch.randn(1, 3, *shape,
                       generator=torch.Generator().manual_seed(0))


def _import_converter():
    try:
        import litert_torch
    except ImportError as err:
        raise ImportError(f'{CONVERTER} is not installed ({err}); '
                          f'{INSTALL_HINT}') from err
    return litert_torch


def convert(variant, out, checkpoint=None, shape=None):
    """Write ``out`` (.tflite); returns (the PyTorch model, the input)."""
    refuse_same_file(checkpoint, out, '--out', '--checkpoint')
    litert_torch = _import_converter()
    model = build_classifier(variant, checkpoint)
    images = example_input(variant, shape)
    edge = litert_torch.convert(model, (images, ))
    atomic_replace(out, edge.export)
    return model, images


def run_litert(path, images):
    """The LiteRT interpreter's output for ``images`` (numpy)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ImportError(f'{RUNTIME} (the LiteRT interpreter) is not '
                          f'installed ({err}); {INSTALL_HINT}') from err
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]['index'],
                           images.numpy())
    interpreter.invoke()
    return interpreter.get_tensor(
        interpreter.get_output_details()[0]['index'])


def compare_with_litert(model, path, images):
    """max |LiteRT - PyTorch| / std(PyTorch) of the logits."""
    result = run_litert(path, images)
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
    parser.add_argument('--checkpoint', help='official or mmpretrain '
                        'classifier weights, loaded strictly')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the variant's "
                        'resolution)')
    parser.add_argument('--verify', action='store_true',
                        help='compare the LiteRT interpreter with PyTorch')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest max|LiteRT - PyTorch| / std accepted')
    args = parser.parse_args(argv)
    model, images = convert(args.variant, args.out, args.checkpoint,
                            args.shape)
    h, w = images.shape[-2:]
    print(f'wrote {args.out} ({args.variant}, input 1x3x{h}x{w}; '
          + ', '.join(f'{k} {v}' for k, v in versions().items()) + ')')
    if args.verify:
        error = compare_with_litert(model, args.out, images)
        print(f'logits: max|LiteRT - PyTorch| / std = {error:.2e}')
        if not error <= args.tolerance:
            raise SystemExit(f'LiteRT differs from PyTorch: {error:.2e} > '
                             f'--tolerance {args.tolerance:.0e}')
    return args.out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ImportError, RuntimeError, ValueError) as err:
        sys.exit(f'error: {err}')
