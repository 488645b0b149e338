"""Mask R-CNN through the fused kernels gives the reference path's
detections and masks.

The detector as the shipped config builds it (random weights, the
backbone as built, no folding), in eval mode on a padded batch of one
landscape and one portrait image, once with every op family on its torch
reference (scan ``torch``; Laplace, Haar and BatchNorm ``reference``) and
once on the Triton kernels (``triton``): the backbone features agree to a
printed max |diff| / std, and every one of the reference's top detections
has a twin among the fused ones (same class, box IoU, score, mask IoU). On a
CUDA machine at detection size; without CUDA the kernels run in Triton's
interpreter at a small size (this file runs in the Triton test process,
scripts/test.sh).
"""
import pytest
import torch

from tests.modules import REPO
from tests.triton_testing import CUDA, DEVICE, import_kernels

for _family in ('scan', 'laplace', 'wavelet', 'batchnorm'):
    import_kernels(_family)

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.bbox import bbox_overlaps  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmtinyvim.ops import batchnorm, laplace, scan, wavelet  # noqa: E402

PATHS = {
    'reference': {scan.ENV_VAR: 'torch', laplace.ENV_VAR: 'reference',
                  wavelet.ENV_VAR: 'reference',
                  batchnorm.ENV_VAR: 'reference'},
    'fused': {scan.ENV_VAR: 'triton', laplace.ENV_VAR: 'triton',
              wavelet.ENV_VAR: 'triton', batchnorm.ENV_VAR: 'triton'},
}
# (height, width) of the two images and of the padded batch
SIZES = (((800, 1333), (1333, 800)), (1344, 1344)) if CUDA else \
    (((48, 64), (64, 48)), (64, 64))
TOP = 20


def build(config):
    register_all_modules()
    cfg = Config.fromfile(str(REPO / 'configs' / config))
    cfg.model.backbone.init_cfg = None  # random weights, no download
    # every candidate kept, so that random weights give detections
    cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=100)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(DEVICE).eval()


def batch():
    (first, second), (height, width) = SIZES
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(2, 3, height, width)
    samples = []
    for i, (h, w) in enumerate((first, second)):
        x[i, :, :h, :w] = torch.randn(3, h, w, generator=g)
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(height, width),
                                 batch_input_shape=(height, width),
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    return x.to(DEVICE), samples


def run(model, path, monkeypatch):
    for var, value in PATHS[path].items():
        monkeypatch.setenv(var, value)
    x, samples = batch()
    with torch.no_grad():
        features = model.backbone(x)
        results = model.predict(x, samples, rescale=True)
    return features, [r.pred_instances for r in results]


@pytest.mark.parametrize('config', ['maskrcnn_tinyvim_s_coco.py',
                                    'maskrcnn_mobilemamba_t2_coco.py'])
def test_maskrcnn_detections_through_the_kernels(config, monkeypatch):
    if CUDA:
        # TF32 convs would round the two paths' (equal up to float32
        # rounding) inputs apart by ~1e-3 of std: compare the kernels, not
        # TF32 (the golden data's GPU bound is for TF32 off, too)
        monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
        monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    model = build(config)
    ref_features, ref = run(model, 'reference', monkeypatch)
    features, fused = run(model, 'fused', monkeypatch)
    parity = max(float((a - b).abs().max() / b.std())
                 for a, b in zip(features, ref_features))
    print(f'\n{config}: backbone features max|fused - reference| / std '
          f'{parity:.2e}')
    # a chunked scan on the GPU: the golden data's 1e-3 bound
    assert parity < (1e-3 if CUDA else 1e-4)
    for r, f in zip(ref, fused):
        assert len(r) == len(f) > TOP
        top = r[r.scores.argsort(descending=True)[:TOP]]
        iou = bbox_overlaps(top.bboxes, f.bboxes)
        same_class = top.labels[:, None] == f.labels[None, :]
        iou = torch.where(same_class, iou, torch.zeros_like(iou))
        best, twin = iou.max(1)
        assert float(best.min()) > 0.99, best
        assert float((top.scores - f.scores[twin]).abs().max()) < 1e-3
        a, b = top.masks, f.masks[twin]
        inter = (a & b).flatten(1).sum(1)
        union = (a | b).flatten(1).sum(1)
        mask_iou = torch.where(union > 0, inter / union.clamp_min(1), 1.0)
        # random weights put many mask logits near the threshold: a pixel
        # or two of a small mask may flip
        assert float(mask_iou.min()) > 0.95 and \
            float(mask_iou.mean()) > 0.99, mask_iou
