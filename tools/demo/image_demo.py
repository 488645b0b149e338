"""Draw a model's predictions on an image.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT --out-file out.jpg
    python tools/demo/image_demo.py IMAGE CONFIG --random-weights \\
        --out-file out.jpg

The toolbox's own Inferencer runs the model (mmdet ``DetInferencer``, mmseg
``MMSegInferencer``, mmpretrain ``ImageClassificationInferencer``, picked by
the config's ``default_scope``) and its visualizer paints boxes and masks,
the label map, or the top class, on a picture the size of the input image.

Class names: the checkpoint's ``meta.dataset_meta`` when it has one, else the
config's dataset meta (``test_dataloader.dataset.metainfo`` over the
``METAINFO`` of the dataset class the config names, e.g. ADE20K's 150
classes), never the toolbox's default (COCO / Cityscapes).

Memory: an image whose longest side exceeds ``--max-side`` (default: the
limit of the config's task, ``MAX_SIDE`` of mmtinyvim.datasets.size_limit,
which the test pipelines enforce too) is downscaled to it before prediction,
and the picture is drawn at that size, with a warning; a JPEG at least twice
as large is decoded at 1/2, 1/4 or 1/8 scale first. Full-resolution masks of
an 8000x8000 image took 9.4 GB; the default bounds the peak whatever the
input size.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import tempfile
import warnings

import cv2
import mmcv
from mmengine.config import Config

from mmtinyvim.datasets.meta import dataset_meta_from_config  # noqa: F401
from mmtinyvim.datasets.size_limit import (MAX_SIDE, bound_image_size,
                                           max_side_for)
from mmtinyvim.engine.config_check import load_config
from mmtinyvim.utils.checkpoint import (require_finite,
                                        safe_loading_in_mmengine)

RANDOM_WEIGHTS_WARNING = (
    'No checkpoint: the model runs with RANDOMLY INITIALISED weights; its '
    'predictions are meaningless (this only shows that the pipeline runs).')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint file (leave out only together with '
                        '--random-weights)')
    parser.add_argument('--random-weights', action='store_true',
                        help='run without a checkpoint, with randomly '
                        'initialised weights (predictions are meaningless)')
    parser.add_argument('--out-file', required=True,
                        help='where to write the painted image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: minimum score of a drawn box')
    parser.add_argument('--max-side', type=int, metavar='N',
                        help='images whose longest side is longer are '
                        'downscaled to it for prediction and drawing '
                        '(default: the limit of the config\'s toolbox, ' +
                        ', '.join(f'{scope} {side} px' for scope, side in
                                  MAX_SIDE.items()) + ')')
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random_weights:
        parser.error('no checkpoint given: pass a checkpoint file, or '
                     '--random-weights to run with random weights')
    if args.checkpoint is not None and args.random_weights:
        parser.error('pass either a checkpoint or --random-weights, not both')
    if args.max_side is not None and args.max_side < 32:
        parser.error(f'--max-side must be >= 32, got {args.max_side}')
    return args


def checkpoint_dataset_meta(checkpoint):
    """The ``meta.dataset_meta`` a checkpoint stores, or ``None``; NaN / inf
    weights are refused here, where the file is read before the
    Inferencer loads it (they would be drawn as meaningless predictions)."""
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    if isinstance(ckpt, dict):
        state = ckpt.get('state_dict', ckpt)
        if isinstance(state, dict):
            require_finite(state, what=f'Checkpoint {checkpoint!r}')
    meta = (ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta and dataset_meta.get('classes'):
        return dataset_meta
    if meta.get('CLASSES'):
        return dict(classes=meta['CLASSES'])
    return None


def resolve_dataset_meta(cfg, checkpoint=None):
    """The checkpoint's dataset meta, else the config's (the dataset's own
    classes, not the toolbox's COCO / Cityscapes default)."""
    meta = checkpoint_dataset_meta(checkpoint) if checkpoint else None
    return meta if meta is not None else dataset_meta_from_config(cfg)


def read_image(image, max_side):
    """The BGR image, downscaled (with a warning) so that its longest side
    is at most ``max_side``."""
    try:  # the size from the header, without decoding the pixels
        from PIL import Image
        with Image.open(image) as header:
            width, height = header.size
    except Exception:  # not an image PIL knows: let OpenCV decide
        width = height = 0
    # a large image is decoded at 1/2, 1/4 or 1/8 of its size (JPEG DCT
    # scaling), never larger than twice the size needed
    flag, factor = cv2.IMREAD_COLOR, 1
    for reduce, reduced_flag in ((8, cv2.IMREAD_REDUCED_COLOR_8),
                                 (4, cv2.IMREAD_REDUCED_COLOR_4),
                                 (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if max(width, height) >= reduce * max_side:
            flag, factor = reduced_flag, reduce
            break
    img = cv2.imread(image, flag)
    if img is None:
        raise ValueError(f'Cannot decode image {image}')
    if factor == 1:
        height, width = img.shape[:2]
    if max(height, width) > max_side:
        # the decoded image's own orientation (EXIF applied), the size
        # scaled from the full resolution
        rows, cols = img.shape[:2]
        full_rows, full_cols = height, width
        if factor > 1 and (rows > cols) != (height > width):  # EXIF turn
            full_rows, full_cols = width, height
        scale = max_side / max(full_rows, full_cols)
        img = cv2.resize(img, (max(1, round(full_cols * scale)),
                               max(1, round(full_rows * scale))),
                         interpolation=cv2.INTER_AREA)
        warnings.warn(
            f'{image} is {width}x{height}, above --max-side {max_side}: it is '
            f'downscaled to {img.shape[1]}x{img.shape[0]} for prediction and '
            'the picture is drawn at that size', UserWarning)
    return img


def paint(image, config, checkpoint=None, device='cpu', score_thr=0.3,
          max_side=None):
    """The RGB image with the predictions drawn, and the prediction (a
    ``DetDataSample``, ``SegDataSample`` or mmpretrain ``DataSample``, in the
    coordinates of the picture).

    ``config``: a config file or an already loaded ``Config``.
    ``checkpoint=None``: random weights, with a warning.
    The picture is the image's size, or its size downscaled to ``max_side``
    (with a warning; None: the limit of the config's toolbox,
    ``MAX_SIDE``)."""
    if not osp.isfile(image):
        raise FileNotFoundError(f'Image file not found: {image}')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {checkpoint}')
    cfg = (copy.deepcopy(config) if isinstance(config, Config) else
           load_config(config))
    if cfg.get('visualizer'):  # drawn in memory: no backend writing files
        cfg.visualizer.pop('vis_backends', None)
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg', 'mmpretrain'):
        raise ValueError(f'Config default_scope {scope!r} is not one of '
                         "'mmdet', 'mmseg', 'mmpretrain'")
    if max_side is None:
        max_side = max_side_for(scope)
    # the Inferencer's test pipeline checks the image it gets against the
    # limit the image was downscaled to
    bound_image_size(cfg, max_side)
    if checkpoint is None:
        warnings.warn(RANDOM_WEIGHTS_WARNING, UserWarning)
    # the dataset meta and the Inferencer's weights are loaded by mmengine:
    # under torch's weights_only, mmengine's loaders put back afterwards
    with safe_loading_in_mmengine():
        meta = resolve_dataset_meta(cfg, checkpoint)
        img = read_image(image, max_side)
        rgb = mmcv.bgr2rgb(img)
        with warnings.catch_warnings():
            # the toolboxes' own "random weights" warning is replaced by
            # ours; their "use COCO / Cityscapes classes" by the config's
            # dataset meta
            warnings.filterwarnings('ignore',
                                    message='Checkpoint is not loaded')
            if meta is not None:
                warnings.filterwarnings(
                    'ignore', message='.*(weights is None|dataset_meta or '
                    'class names are not saved).*')
            inferencer = build_inferencer(cfg, checkpoint, device, meta)
            visual, prediction = _predict_and_draw(inferencer, scope, img,
                                                   rgb, score_thr)
    return visual, prediction


def _with_mmengine_collate(inferencer_class):
    """``inferencer_class`` looking its collate function up in mmengine's
    ``FUNCTIONS``: mmdet 3.3, mmseg 1.2 and mmpretrain 1.2 have no
    ``FUNCTIONS`` registry of their own, so mmengine's lookup under their
    scope logs "Failed to search registry with scope ... in the "function"
    registry tree" and then uses mmengine's anyway."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import FUNCTIONS

    class Inferencer(inferencer_class):
        def _init_collate(self, cfg):
            collate_fn = cfg.get('test_dataloader', {}).get('collate_fn')
            if isinstance(collate_fn, dict):
                collate_fn = collate_fn.get('type')
            return FUNCTIONS.get(collate_fn) if collate_fn else pseudo_collate

    Inferencer.__name__ = inferencer_class.__name__
    return Inferencer


def build_inferencer(cfg, checkpoint=None, device='cpu', meta=None):
    """The toolbox's Inferencer for ``cfg`` (its ``default_scope``), with
    ``meta`` (classes, palette) as the model's and visualizer's dataset meta
    when given. ``checkpoint=None``: random weights."""
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = _with_mmengine_collate(DetInferencer)(
            model=cfg, weights=checkpoint, device=device,
            show_progress=False)
        if meta is not None:
            meta = dict(meta)
            meta.setdefault('palette', inferencer.model.dataset_meta.get(
                'palette', 'random'))
            inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = inferencer.model.dataset_meta
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = _with_mmengine_collate(MMSegInferencer)(
            model=cfg, weights=checkpoint, device=device)
        if meta is not None:
            inferencer.model.dataset_meta = dict(
                classes=meta['classes'], palette=meta.get('palette'))
        inferencer.visualizer.set_dataset_meta(
            **inferencer.model.dataset_meta)
    else:
        from mmpretrain.apis import ImageClassificationInferencer
        from mmpretrain.visualization import UniversalVisualizer
        classes = list(meta['classes']) if meta is not None else None
        inferencer = _with_mmengine_collate(ImageClassificationInferencer)(
            model=cfg, pretrained=checkpoint if checkpoint else False,
            device=device, classes=classes)
        inferencer.visualizer = UniversalVisualizer()
        inferencer.visualizer.dataset_meta = dict(classes=inferencer.classes)
    return inferencer


def _predict_and_draw(inferencer, scope, img, rgb, score_thr):
    visualizer = inferencer.visualizer
    if scope == 'mmdet':
        prediction = inferencer(img, return_datasamples=True,
                                no_save_vis=True,
                                no_save_pred=True)['predictions'][0]
        visualizer.add_datasample('image', rgb, prediction, draw_gt=False,
                                  show=False, pred_score_thr=score_thr)
        return visualizer.get_image(), prediction
    if scope == 'mmseg':
        prediction = inferencer(img, return_datasamples=True)
        if isinstance(prediction, list):  # a list for a list of images only
            prediction = prediction[0]
        visualizer.add_datasample('image', rgb, prediction, draw_gt=False,
                                  show=False, with_labels=True)
        return visualizer.get_image(), prediction
    prediction = inferencer(img, return_datasamples=True)[0]
    visual = visualizer.visualize_cls(rgb, prediction,
                                      classes=inferencer.classes)
    return visual, prediction


def check_out_file(out_file, inputs):
    """Raise ``ValueError`` when ``out_file`` is one of ``inputs`` (what ->
    path), also through a symbolic or hard link: writing the picture there
    would destroy that input."""
    if not osp.exists(out_file):
        return
    for what, path in inputs.items():
        if path is None or not osp.exists(path):
            continue
        if osp.samefile(out_file, path):
            link = (' (through a link)'
                    if osp.abspath(out_file) != osp.abspath(path) else '')
            raise ValueError(
                f'--out-file {out_file} is the {what} {path}{link}: writing '
                f'the picture there would destroy the {what}. Give '
                '--out-file another path.')


def write_picture(visual, out_file):
    """Write the RGB picture ``visual`` to ``out_file`` through a temporary
    file in the same folder and a rename: an existing file there is
    replaced whole or not at all, never left half written."""
    ext = osp.splitext(out_file)[1]
    try:
        ok, data = cv2.imencode(ext, mmcv.rgb2bgr(visual))
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(
            f'--out-file {out_file}: OpenCV cannot write a {ext or "(none)"}'
            ' image; name the file with an image extension such as .jpg or '
            '.png.')
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp',
                               prefix=f'.{osp.basename(out_file)}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.tobytes())
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes the file private; the picture gets the usual mode
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_file)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    args = parse_args(argv)
    try:
        check_out_file(args.out_file, {'input image': args.image,
                                       'config': args.config,
                                       'checkpoint': args.checkpoint})
        visual, _ = paint(args.image, args.config, args.checkpoint,
                          args.device, args.score_thr, args.max_side)
        write_picture(visual, args.out_file)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.out_file} ({visual.shape[1]}x{visual.shape[0]})')


if __name__ == '__main__':
    main()
