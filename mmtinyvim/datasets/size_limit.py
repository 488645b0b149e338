"""The image-size bound of inference and evaluation.

Evaluation works at each image's original size: mmdet pastes every predicted
instance mask at it (N x H x W), mmseg resizes the class scores back to it
(150 x H x W float32 for ADE20K) and the metrics compare at it. Memory grows
with the pixel count, so a single huge image (a COCO or ADE20K file listing
one, or a photo given to an Inferencer) would exhaust it. The test
pipelines of the shipped configs therefore refuse such an image with
:class:`CheckMaxImageSize` right after ``LoadImageFromFile``: every path that
builds the test pipeline from a config (``tools/test.py``, the toolboxes'
own ``tools/test.py``, ``DetInferencer``, ``MMSegInferencer``,
``ImageClassificationInferencer``) is bounded. Evaluation cannot downscale
(its metric is at the original size); the image demo downscales instead
(``tools/demo/image_demo.py``, the same limits).

:data:`MAX_SIDE` holds the limits, per toolbox: an image may have as many
pixels as a ``MAX_SIDE`` x ``MAX_SIDE`` square (any shape: memory follows
the pixel count, and a long panorama costs no more than the square of the
same area). How they were chosen, and what they cost: docs/bad_inputs.md.
"""
from mmcv.transforms import BaseTransform
from mmengine.registry import DefaultScope

from mmtinyvim.registry import TRANSFORMS

# Per toolbox, the largest power-of-two side at which one image stays under
# 5 GB of peak memory on CPU, in evaluation and in the image demo (which
# draws at that size); the measurements: docs/bad_inputs.md.
MAX_SIDE = {'mmdet': 4096, 'mmseg': 2048, 'mmpretrain': 4096}

CHECK_TYPE = 'CheckMaxImageSize'


class ImageTooLargeError(ValueError):
    """An image has more pixels than the evaluation's limit."""


def max_side_for(scope):
    """The limit (:data:`MAX_SIDE`) of the toolbox ``scope``."""
    if scope not in MAX_SIDE:
        raise ValueError(
            f'No image-size limit for the scope {scope!r}: give max_side '
            f'(an int >= 1) or build it under one of the scopes '
            f'{", ".join(MAX_SIDE)}')
    return MAX_SIDE[scope]


def _check_max_side(max_side):
    if isinstance(max_side, bool) or not isinstance(max_side, int) or \
            max_side < 1:
        raise ValueError('max_side must be an int >= 1 (the side of the '
                         f'largest square image allowed), got {max_side!r}')
    return max_side


@TRANSFORMS.register_module()
class CheckMaxImageSize(BaseTransform):
    """Raise :class:`ImageTooLargeError` for an image (``results['img']``,
    as loaded) with more pixels than a ``max_side`` x ``max_side`` square.

    Registered in mmengine's root ``TRANSFORMS``, so that the pipelines of
    mmdet, mmseg and mmpretrain (child registries) all build it, and by
    :func:`toolbox_check` in each toolbox's own registry.

    Args:
        max_side (int, optional): side of the largest square image
            allowed. Defaults to None: the limit of the toolbox
            (:data:`MAX_SIDE`) whose registry builds it, else of the
            default scope current when it is built.
    """

    toolbox = None  # set by toolbox_check

    def __init__(self, max_side=None):
        if max_side is None:
            scope = DefaultScope.get_current_instance()
            max_side = max_side_for(self.toolbox or (
                scope.scope_name if scope else None))
        self.max_side = _check_max_side(max_side)

    def transform(self, results):
        height, width = results['img'].shape[:2]
        if height * width <= self.max_side**2:
            return results
        path = results.get('img_path')
        image = f'Image {path}' if path else 'The image'
        side = self.max_side
        raise ImageTooLargeError(
            f'{image} is {width}x{height} pixels ({_mp(width * height)}), '
            f'more than the {side}x{side} ({_mp(side * side)}) that '
            'evaluation and inference allow: both work at the image\'s '
            'original size, and their memory grows with its pixel count. '
            'Downscale the image, or, on a machine with the memory, raise '
            'the limit: tools/test.py --max-side N, or max_side=N of '
            f'{CHECK_TYPE} in the config\'s test pipeline (e.g. '
            '--cfg-options test_dataloader.dataset.pipeline.1.max_side=N).')

    def __repr__(self):
        return f'{type(self).__name__}(max_side={self.max_side})'


def toolbox_check(scope):
    """:class:`CheckMaxImageSize` defaulting to the limit of the toolbox
    ``scope``, for that toolbox's own ``TRANSFORMS`` registry:
    mmpretrain's ``ImageClassificationInferencer`` builds its pipeline with
    mmpretrain's registry but without a default scope."""
    max_side_for(scope)  # a toolbox with a limit
    return type(CHECK_TYPE, (CheckMaxImageSize, ), dict(
        toolbox=scope, __doc__=f'{CHECK_TYPE} with the {scope} limit.'))


def _mp(pixels):
    return f'{pixels / 1e6:.3g} megapixels'


def _is_loader(step):
    kind = step.get('type') if isinstance(step, dict) else None
    return isinstance(kind, str) and kind.split('.')[-1] in (
        'LoadImageFromFile', 'InferencerLoader')


def _pipelines(node):
    """Every ``pipeline`` list under a dataset config (wrappers included)."""
    if isinstance(node, dict):
        if isinstance(node.get('pipeline'), list):
            yield node['pipeline']
        for key, value in node.items():
            if key != 'pipeline':
                yield from _pipelines(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _pipelines(value)


def bound_image_size(cfg, max_side=None):
    """Make every test pipeline of ``cfg`` (``test_dataloader``'s and the
    ``tta_pipeline``) check the image size.

    A pipeline without a :class:`CheckMaxImageSize` (a config not shipped
    here) gets one right after its ``LoadImageFromFile``; ``max_side``, when
    given, becomes the limit of every check. Returns the number of checks.
    """
    if max_side is not None:
        _check_max_side(max_side)
    pipelines = list(_pipelines(cfg.get('test_dataloader', {})))
    if isinstance(cfg.get('tta_pipeline'), list):
        pipelines.append(cfg.tta_pipeline)
    count = 0
    for pipeline in pipelines:
        checks = [step for step in pipeline
                  if isinstance(step, dict) and step.get('type') == CHECK_TYPE]
        loaders = [i for i, step in enumerate(pipeline) if _is_loader(step)]
        if not checks and loaders:
            checks = [dict(type=CHECK_TYPE)]
            pipeline.insert(loaders[0] + 1, checks[0])
        for check in checks:
            if max_side is not None:
                check['max_side'] = max_side
        count += len(checks)
    return count
