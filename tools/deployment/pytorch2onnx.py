"""Export a TinyViM / MobileMamba backbone, ImageNet classifier, single-stage
detector or segmentor to ONNX.

    # any backbone variant, all its outputs, at 224 x 224
    python tools/deployment/pytorch2onnx.py tinyvim-s --out tinyvim_s.onnx
    # the classifier with its weights, re-parameterised, checked with
    # onnxruntime against PyTorch
    python tools/deployment/pytorch2onnx.py mobilemamba-b1 --classifier \\
        --checkpoint mobilemamba_b1.pth --deploy --shape 256 256 --verify
    # the detector or segmentor a config builds (task from its
    # default_scope), checked on an image
    python tools/deployment/pytorch2onnx.py \\
        configs/retinanet_tinyvim_s_coco.py --checkpoint retinanet.pth \\
        --shape 512 512 --verify --image demo.jpg

The selective scan goes through the pure-PyTorch parallel prefix scan
('torch' backend), so the graph holds standard ONNX operators only (no custom
op, opset >= 17). The scan's step count and the input padding depend on
H x W, so the graph has a
fixed spatial size; the batch size is dynamic. The graph's input is the
normalised image batch (N, 3, H, W) float32: mean/std normalisation (and the
BGR -> RGB swap) stays outside, as in the configs' data preprocessors.
Outputs: ``out{i}`` for each backbone output index i, ``logits``
(N, num_classes) for a classifier; for a single-stage detector (RetinaNet,
SSDLite) its head's raw maps per feature level, ``cls_score{l}`` and
``bbox_pred{l}`` (decoding and NMS stay in Python: :func:`decode_detections`
runs the head's own ``predict_by_feat`` on them); for a segmentor
``seg_logits`` (N, num_classes, H, W), the decode head's logits resized to
the input as mmseg's inference does (the label map is their argmax).
Two-stage detectors (Mask R-CNN) are not exported: their RoI heads crop
features per proposal after an NMS, outside what this exporter traces.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtinyvim.engine import ClassifierLogits, switch_to_deploy
from mmtinyvim.engine.config_check import load_config
from mmtinyvim.models.checkpoint_family import family_module
from mmtinyvim.models.zoo import (VARIANTS, backbone_class, build_classifier,
                                  paper_resolution, parse_variant)
from mmtinyvim.utils.checkpoint import (safe_torch_load, strict_load,
                                        unwrap_state_dict)
from mmtinyvim.utils.files import atomic_replace, refuse_same_file

SCAN_BACKEND = 'torch'  # the only backend made of exportable operators
DEFAULT_OPSET = 17
# default_scope -> --task
TASKS = {'mmdet': 'det', 'mmseg': 'seg', 'mmpretrain': 'cls'}
# a config's export size when its test pipeline keeps the aspect ratio
DEFAULT_CONFIG_SHAPE = (512, 512)


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


class DetectorHeadOutputs(nn.Module):
    """A single-stage mmdet detector as ``images -> (cls_score per level...,
    bbox_pred per level...)``: backbone, neck and head, the head's raw
    outputs (its ``forward``), before decoding and NMS."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    @property
    def data_preprocessor(self):
        return self.detector.data_preprocessor

    def forward(self, images):
        groups = self.detector.bbox_head(self.detector.extract_feat(images))
        return tuple(level for group in groups for level in group)


class SegmentorLogits(nn.Module):
    """An mmseg segmentor as ``images -> logits (N, C, H, W)``: the decode
    head's logits resized to the input size, as mmseg's ``predict`` does
    (bilinear, the head's ``align_corners``)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    @property
    def data_preprocessor(self):
        return self.segmentor.data_preprocessor

    def forward(self, images):
        logits = self.segmentor._forward(images)
        return F.interpolate(
            logits, size=images.shape[2:], mode='bilinear',
            align_corners=self.segmentor.decode_head.align_corners)


def config_task(cfg, path, task=None):
    """``'det'`` or ``'seg'`` from the config's ``default_scope``; one clear
    error for a classification config or a ``task`` it contradicts."""
    found = TASKS[cfg.default_scope]
    if found == 'cls':
        raise ValueError(
            f'{path} is a classification config: export its classifier with '
            'pytorch2onnx.py VARIANT --classifier (e.g. tinyvim-s '
            '--classifier)')
    if task is not None and task != found:
        raise ValueError(
            f'--task {task}: {path} is a {found} config (default_scope '
            f'{cfg.default_scope!r}); leave out --task or give --task {found}')
    return found


def config_shape(cfg):
    """(H, W) of the config's fixed test resize (``keep_ratio=False``, e.g.
    SSDLite's 320 x 320), else :data:`DEFAULT_CONFIG_SHAPE`."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'pipeline', [])
    for step in pipeline:
        if (step.get('type') == 'Resize' and not step.get('keep_ratio')
                and isinstance(step.get('scale'), (tuple, list))):
            width, height = step['scale']
            return int(height), int(width)
    return DEFAULT_CONFIG_SHAPE


def build_from_config(path: str, checkpoint=None, task=None):
    """The detector or segmentor of the config at ``path`` with the 'torch'
    scan, wrapped for export (:class:`DetectorHeadOutputs`,
    :class:`SegmentorLogits`), its output names, and the task. A checkpoint
    of the model (mmengine's ``state_dict``) loads strictly; without one
    the weights are random (the backbone's ``init_cfg`` is not loaded)."""
    from mmengine.registry import DefaultScope
    cfg = load_config(path)
    task = config_task(cfg, path, task)
    cfg.model.backbone.scan_backend = SCAN_BACKEND
    cfg.model.backbone.init_cfg = None  # the checkpoint, or random weights
    if task == 'det':
        from mmdet.models.detectors import SingleStageDetector
        from mmdet.registry import MODELS
    else:
        from mmseg.models.segmentors import EncoderDecoder
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    if task == 'det' and not isinstance(model, SingleStageDetector):
        raise ValueError(
            f'{path}: {type(model).__name__} is a two-stage detector: its '
            'RoI heads crop features per proposal after an NMS, which this '
            'exporter does not put in the graph. Export a single-stage '
            'detector (configs/retinanet_*.py, configs/ssdlite*.py), or the '
            'backbone alone (pytorch2onnx.py VARIANT).')
    if task == 'seg' and not isinstance(model, EncoderDecoder):
        raise ValueError(f'{path}: {type(model).__name__} is not an mmseg '
                         'EncoderDecoder; only those are exported')
    if checkpoint is not None:
        strict_load(model, _checkpoint_state(checkpoint),
                    what=f'Checkpoint {checkpoint!r}')
    model.eval()
    if task == 'det':
        levels = len(model.bbox_head.prior_generator.strides)
        names = ([f'cls_score{i}' for i in range(levels)] +
                 [f'bbox_pred{i}' for i in range(levels)])
        return DetectorHeadOutputs(model), names, task
    return SegmentorLogits(model), ['seg_logits'], task


def image_batch(model: nn.Module, path: str, shape) -> torch.Tensor:
    """The image at ``path`` as the exported graph's input: resized to
    ``shape`` (H, W), channels swapped and normalised as ``model``'s data
    preprocessor does (its ``mean``, ``std``, ``bgr_to_rgb``); (1, 3, H, W)
    float32."""
    import cv2
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'--image {path}: no such file')
    image = mmcv.imread(path)
    if image is None:
        raise ValueError(f'--image {path}: not a readable image')
    height, width = shape
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    preprocessor = getattr(model, 'data_preprocessor', None)
    # mmengine's (and mmdet's) preprocessors name the swap
    # _channel_conversion, mmseg's channel_conversion
    if (getattr(preprocessor, '_channel_conversion', False)
            or getattr(preprocessor, 'channel_conversion', False)):
        batch = batch.flip(1)
    if getattr(preprocessor, '_enable_normalize', False):
        batch = (batch - preprocessor.mean) / preprocessor.std
    return batch.contiguous()


def decode_detections(exported: DetectorHeadOutputs, outputs, shape,
                      score_thr=None):
    """Boxes, scores and labels from the exported detector's outputs (one
    list per image, mmdet ``InstanceData``, in the input's pixels): the
    head's own decoding and NMS (``predict_by_feat``, the config's
    ``test_cfg``) run in PyTorch on the ONNX maps."""
    outputs = [torch.as_tensor(o) for o in outputs]
    levels = len(outputs) // 2
    height, width = shape
    metas = [dict(img_shape=(height, width), ori_shape=(height, width),
                  pad_shape=(height, width), scale_factor=(1.0, 1.0))
             for _ in range(outputs[0].shape[0])]
    head = exported.detector.bbox_head
    cfg = copy.deepcopy(head.test_cfg)
    if score_thr is not None:
        cfg.score_thr = score_thr
    with torch.no_grad():
        return head.predict_by_feat(outputs[:levels], outputs[levels:],
                                    batch_img_metas=metas, cfg=cfg,
                                    rescale=False)


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
                             batch: int = 2, seed: int = 0, images=None):
    """max |ONNX - PyTorch| / std(PyTorch) for every output, on a random
    batch (of another size than the traced one, to check the dynamic
    batch axis), or on ``images`` (an input batch, e.g.
    :func:`image_batch`; a single image is completed to a batch of 2 by its
    mirror image)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError('--verify needs onnxruntime: pip install '
                          "'mmtinyvim[onnx]'") from err
    if images is None:
        generator = torch.Generator().manual_seed(seed)
        images = torch.randn(batch, 3, *shape, generator=generator)
    elif images.shape[0] == 1:
        images = torch.cat([images, images.flip(3)])
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


def variant_or_config(value: str) -> str:
    """A zoo variant (any case) or the path of a config file (``*.py``)."""
    if value.endswith('.py'):
        return value
    if value.lower() in VARIANTS:
        return value.lower()
    raise argparse.ArgumentTypeError(
        f'invalid choice: {value!r} (choose from '
        f'{", ".join(map(repr, VARIANTS))}, or give a detection / '
        'segmentation config file *.py)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('variant', type=variant_or_config,
                        help='model variant (its backbone, or with '
                        '--classifier its ImageNet classifier), or a '
                        'detection / segmentation config file (the detector '
                        'or segmentor it builds)')
    parser.add_argument('--task', choices=['det', 'seg'],
                        help="a config's task (default: from its "
                        'default_scope, mmdet or mmseg)')
    parser.add_argument('--out', help='ONNX file to write (default: '
                        '<variant>[_cls].onnx, or <config name>.onnx)')
    parser.add_argument('--classifier', action='store_true',
                        help='export the ImageNet classifier (logits) '
                        'instead of the backbone')
    parser.add_argument('--checkpoint', help='weights to load strictly '
                        '(mmtinyvim, mmdet/mmseg/mmpretrain or official; '
                        "for a config, a checkpoint of its model; without "
                        'one a config is exported with random weights)')
    parser.add_argument('--out-indices', type=int, nargs='+',
                        help='backbone outputs to export (default: the '
                        "backbone's default)")
    parser.add_argument('--shape', type=int, nargs=2, default=None,
                        metavar=('H', 'W'), help='input size (default: the '
                        "variant's paper resolution; for a config its fixed "
                        'test resize, else %d x %d)' % DEFAULT_CONFIG_SHAPE)
    parser.add_argument('--deploy', action='store_true',
                        help='fold Conv+BN pairs and re-parameterised '
                        'branches first (same outputs, fewer ops)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch and fail '
                        'beyond --tolerance')
    parser.add_argument('--image', help='with --verify: compare on this '
                        'image (resized to --shape and normalised as the '
                        "model's data preprocessor does) instead of a "
                        'random batch')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max |ONNX - PyTorch| / std(PyTorch) allowed')
    args = parser.parse_args(argv)
    args.config = args.variant if args.variant.endswith('.py') else None
    if args.classifier and args.out_indices:
        parser.error('--out-indices applies to backbones, not --classifier')
    if args.config and (args.classifier or args.out_indices):
        flag = '--classifier' if args.classifier else '--out-indices'
        parser.error(f'{flag} applies to a variant, not to a config (which '
                     'exports the detector or segmentor it builds)')
    if args.task and not args.config:
        parser.error('--task applies to a config file, not to a variant')
    if args.image and not args.verify:
        parser.error('--image is the input of --verify; add --verify')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'--checkpoint {args.checkpoint}: no such '
                                'file')
    if args.config and not os.path.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    if args.image and not os.path.isfile(args.image):
        raise FileNotFoundError(f'--image {args.image}: no such file')
    if args.config:
        out = args.out or (osp.splitext(osp.basename(args.config))[0] +
                           '.onnx')
    else:
        out = args.out or (args.variant.replace('-', '_') +
                           ('_cls' if args.classifier else '') + '.onnx')
    refuse_same_file(args.checkpoint, out, '--out', '--checkpoint')
    refuse_same_file(args.config, out, '--out', 'config')
    refuse_same_file(args.image, out, '--out', '--image')
    if args.config:
        model, output_names, _ = build_from_config(
            args.config, args.checkpoint, args.task)
        if args.checkpoint is None:
            print(f'{args.config}: no --checkpoint, exporting random weights')
        default_shape = config_shape(load_config(args.config))
    elif args.classifier:
        model, output_names = build_classifier_for_export(args.variant,
                                                          args.checkpoint)
    else:
        model, output_names = build_backbone(args.variant, args.checkpoint,
                                             args.out_indices)
    if not args.config:
        default_shape = (paper_resolution(args.variant), ) * 2
    if args.deploy:
        switch_to_deploy(model)
    shape = tuple(args.shape or default_shape)
    export(model, output_names, out, shape, args.opset)
    print(f'wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB): input '
          f'(N, 3, {shape[0]}, {shape[1]}), outputs {output_names}')
    if args.verify:
        images = image_batch(model, args.image, shape) if args.image else None
        errors = compare_with_onnxruntime(model, out, shape, images=images)
        on = f' on {args.image}' if args.image else ''
        for name, error in errors.items():
            print(f'{name}: max|ONNX - PyTorch| / std = {error:.2e}{on}')
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
