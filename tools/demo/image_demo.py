"""Draw a model's predictions on an image.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT --out-file out.jpg

The toolbox's own Inferencer runs the model (mmdet ``DetInferencer``, mmseg
``MMSegInferencer``, mmpretrain ``ImageClassificationInferencer``, picked by
the config's ``default_scope``) and its visualizer paints boxes and masks,
the label map, or the top class.
"""
import argparse
import os
import os.path as osp
import sys

import mmcv
from mmengine.config import Config

from mmtinyvim.utils.checkpoint import use_safe_loader_in_mmengine

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from train import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True,
                        help='where to write the painted image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: minimum score of a drawn box')
    return parser.parse_args(argv)


def paint(image, config, checkpoint, device='cpu', score_thr=0.3):
    """The RGB image with the predictions drawn, and the predictions.

    ``config``: a config file or an already loaded ``Config``."""
    for path, what in ((image, 'Image'), (checkpoint, 'Checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')
    cfg = config if isinstance(config, Config) else load_config(config)
    use_safe_loader_in_mmengine()
    scope = cfg.default_scope
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint,
                                   device=device, show_progress=False)
        result = inferencer(image, return_vis=True, no_save_vis=True,
                            no_save_pred=True, pred_score_thr=score_thr)
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint,
                                     device=device)
        result = inferencer(image, return_vis=True, show=False)
    else:
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(
            model=cfg, pretrained=checkpoint, device=device)
        from mmpretrain.visualization import UniversalVisualizer
        prediction = inferencer(image, return_datasamples=True)[0]
        visualizer = UniversalVisualizer()
        visual = visualizer.visualize_cls(
            mmcv.imread(image, channel_order='rgb'), prediction,
            classes=inferencer.classes)
        return visual, prediction
    return result['visualization'][0], result['predictions'][0]


def main(argv=None):
    args = parse_args(argv)
    try:
        visual, _ = paint(args.image, args.config, args.checkpoint,
                          args.device, args.score_thr)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(visual), args.out_file)
    print(f'wrote {args.out_file}')


if __name__ == '__main__':
    main()
