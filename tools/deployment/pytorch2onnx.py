"""Export a TinyViM / MobileMamba backbone or ImageNet classifier to ONNX.

    # any backbone variant, all its outputs, at 224 x 224
    python tools/deployment/pytorch2onnx.py tinyvim-s --out tinyvim_s.onnx
    # the classifier with its weights, re-parameterised, checked with
    # onnxruntime against PyTorch
    python tools/deployment/pytorch2onnx.py mobilemamba-b1 --classifier \\
        --checkpoint mobilemamba_b1.pth --deploy --shape 256 256 --verify

The selective scan goes through the pure-PyTorch parallel prefix scan
('torch' backend), so the graph holds standard ONNX operators only (no custom
op, opset >= 17). The scan's step count and the input padding depend on
H x W, so the graph has a
fixed spatial size; the batch size is dynamic. The graph's input is the
normalised image batch (N, 3, H, W) float32: mean/std normalisation stays
outside, as in the configs' data preprocessors. Outputs: ``out{i}`` for each
backbone output index i, or ``logits`` (N, num_classes) for a classifier.
"""
import argparse
import os
import sys
import warnings

import torch
import torch.nn as nn

from mmtinyvim.engine import ClassifierLogits, switch_to_deploy
from mmtinyvim.models.checkpoint_family import family_module
from mmtinyvim.models.zoo import (VARIANTS, backbone_class, build_classifier,
                                  paper_resolution, parse_variant)
from mmtinyvim.utils.checkpoint import (safe_torch_load, strict_load,
                                        unwrap_state_dict)
from mmtinyvim.utils.files import atomic_replace, refuse_same_file

SCAN_BACKEND = 'torch'  # the only backend made of exportable operators
DEFAULT_OPSET = 17


def _checkpoint_state(path):
    return unwrap_state_dict(safe_torch_load(path))


def build_backbone(variant: str, checkpoint=None, out_indices=None):
    """A backbone with the 'torch' scan; an mmtinyvim, official, or
    mmdet/mmseg/mmpretrain checkpoint (``backbone.`` keys) loads strictly."""
    family, arch = parse_variant(variant)
    kwargs = dict(arch=arch, scan_backend=SCAN_BACKEND)
    if out_indices is not None:
        kwargs['out_indices'] = tuple(out_indices)
    if checkpoint is not None:
        prefix = None
        keys = _checkpoint_state(checkpoint)
        if any(k.startswith('backbone.') for k in keys):
            prefix = 'backbone.'
        kwargs['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint,
                                  prefix=prefix)
    model = backbone_class(family)(**kwargs)
    if checkpoint is not None:
        model.init_weights()
    output_names = [f'out{i}' for i in model.out_indices]
    return model, output_names


def build_classifier_for_export(variant: str, checkpoint=None):
    """The ImageNet classifier with the 'torch' scan; an mmpretrain or an
    official classification checkpoint loads strictly."""
    classifier, _ = build_classifier(variant, scan_backend=SCAN_BACKEND)
    if checkpoint is not None:
        state = _checkpoint_state(checkpoint)
        if not any(k.startswith('backbone.') for k in state):
            family, _ = parse_variant(variant)
            state = family_module(family).convert_official_classifier(state)
        strict_load(classifier, state, what=f'Checkpoint {checkpoint!r}')
    return ClassifierLogits(classifier), ['logits']


def export(model: nn.Module, output_names, out: str, shape=(224, 224),
           opset: int = DEFAULT_OPSET) -> str:
    """Trace ``model`` (eval mode) on a (1, 3, H, W) batch and write ONNX."""
    height, width = shape
    if min(height, width) < 32:
        raise ValueError(f'--shape must be at least 32 x 32, got {height} x '
                         f'{width}')
    model.eval()
    images = torch.randn(1, 3, height, width)
    dynamic = {name: {0: 'batch'} for name in ['input', *output_names]}
    with warnings.catch_warnings():
        # shape-dependent Python branches are meant to be frozen in the graph
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        # through a temporary file: a failed export keeps an older --out
        atomic_replace(out, lambda tmp: torch.onnx.export(
            model, (images, ), tmp, dynamo=False, opset_version=opset,
            input_names=['input'], output_names=output_names,
            dynamic_axes=dynamic))
    return out


def compare_with_onnxruntime(model: nn.Module, onnx_path: str, shape,
                             batch: int = 2, seed: int = 0):
    """max |ONNX - PyTorch| / std(PyTorch) for every output, on a random
    batch (of another size than the traced one, to check the dynamic
    batch axis)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('--verify needs onnxruntime: pip install '
                          "'mmtinyvim[onnx]'") from err
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *shape, generator=generator)
    session = onnxruntime.InferenceSession(
        onnx_path, providers=['CPUExecutionProvider'])
    results = session.run(None, {'input': images.numpy()})
    with torch.no_grad():
        expected = model.eval()(images)
    if torch.is_tensor(expected):
        expected = (expected, )
    errors = {}
    for node, result, reference in zip(session.get_outputs(), results,
                                       expected):
        result = torch.from_numpy(result)
        if result.shape != reference.shape:
            raise RuntimeError(f'ONNX output {node.name} has shape '
                               f'{tuple(result.shape)}, PyTorch '
                               f'{tuple(reference.shape)}')
        errors[node.name] = ((result - reference).abs().max() /
                             reference.std()).item()
    return errors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('variant', type=str.lower, choices=VARIANTS,
                        help='model variant')
    parser.add_argument('--out', help='ONNX file to write (default: '
                        '<variant>[_cls].onnx)')
    parser.add_argument('--classifier', action='store_true',
                        help='export the ImageNet classifier (logits) '
                        'instead of the backbone')
    parser.add_argument('--checkpoint', help='weights to load strictly '
                        '(mmtinyvim, mmdet/mmseg/mmpretrain or official)')
    parser.add_argument('--out-indices', type=int, nargs='+',
                        help='backbone outputs to export (default: the '
                        "backbone's default)")
    parser.add_argument('--shape', type=int, nargs=2, default=None,
                        metavar=('H', 'W'), help='input size (default: the '
                        "variant's paper resolution)")
    parser.add_argument('--deploy', action='store_true',
                        help='fold Conv+BN pairs and re-parameterised '
                        'branches first (same outputs, fewer ops)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch and fail '
                        'beyond --tolerance')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max |ONNX - PyTorch| / std(PyTorch) allowed')
    args = parser.parse_args(argv)
    if args.classifier and args.out_indices:
        parser.error('--out-indices applies to backbones, not --classifier')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'--checkpoint {args.checkpoint}: no such '
                                'file')
    out = args.out or (args.variant.replace('-', '_') +
                       ('_cls' if args.classifier else '') + '.onnx')
    refuse_same_file(args.checkpoint, out, '--out', '--checkpoint')
    if args.classifier:
        model, output_names = build_classifier_for_export(args.variant,
                                                          args.checkpoint)
    else:
        model, output_names = build_backbone(args.variant, args.checkpoint,
                                             args.out_indices)
    if args.deploy:
        switch_to_deploy(model)
    shape = tuple(args.shape or (paper_resolution(args.variant), ) * 2)
    export(model, output_names, out, shape, args.opset)
    print(f'wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB): input '
          f'(N, 3, {shape[0]}, {shape[1]}), outputs {output_names}')
    if args.verify:
        errors = compare_with_onnxruntime(model, out, shape)
        for name, error in errors.items():
            print(f'{name}: max|ONNX - PyTorch| / std = {error:.2e}')
        worst = max(errors.values())
        if not worst <= args.tolerance:
            raise SystemExit(f'ONNX output differs from PyTorch: '
                             f'{worst:.2e} > tolerance {args.tolerance:.0e}')
    return out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ImportError, RuntimeError, TypeError,
            ValueError) as err:
        sys.exit(f'error: {err}')
