"""Parameters and FLOPs (multiply-adds, the papers' convention) of a model.

    # a backbone variant as its ImageNet classifier, at the paper resolution
    python tools/analysis_tools/get_flops.py --arch tinyvim-s [--deploy]
    python tools/analysis_tools/get_flops.py --arch all
    # any mmdet / mmseg / mmpretrain config of this project
    python tools/analysis_tools/get_flops.py configs/maskrcnn_tinyvim_s_coco.py --shape 800 1333

Counting goes through ``mmengine.analysis.FlopAnalyzer`` with one extra op
handle for the selective scan (VMamba's 9*B*L*D*N + B*D*L, the count both
papers use); everything else is mmengine's own handles.
"""
import argparse
import json
import sys

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count

from mmtinyvim.engine import switch_to_deploy
from mmtinyvim.models.zoo import PUBLISHED, VARIANTS, build_classifier
from mmtinyvim.ops import SCAN_OP_HANDLES
from mmtinyvim.utils.progress import track


def count(model, inputs):
    model.eval()
    # MobileMamba's Haar transforms run element-wise (sums and differences of
    # 2x2 blocks), which FlopAnalyzer does not see; count them as the
    # stride-2 depthwise (transposed) convolutions they equal, 4 MACs per
    # output, so the count does not depend on the form that runs.
    for module in model.modules():
        if getattr(module, 'analytic_haar', False):
            module.analytic_haar = False
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**SCAN_OP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    return flops, analyzer.by_operator()


def report_arch(name, deploy):
    model, resolution = build_classifier(name)
    if deploy:
        switch_to_deploy(model)
    params = parameter_count(model)[''] / 1e6
    flops, by_op = count(model, torch.randn(1, 3, resolution, resolution))
    row = dict(model=name, resolution=resolution, deploy=deploy,
               params_M=round(params, 4), gmacs=round(flops / 1e9, 4),
               scan_gmacs=round(sum(v for k, v in by_op.items()
                                    if 'Scan' in k) / 1e9, 5))
    published = PUBLISHED.get(name)
    if published is not None:  # the papers count multiply-adds
        row.update(published_params_M=published.params_m,
                   published_gmacs=published.flops_g)
        row['params_vs_paper_%'] = round(
            100 * (params / published.params_m - 1), 2)
        row['gmacs_vs_paper_%'] = round(
            100 * (flops / 1e9 / published.flops_g - 1), 2)
    return row


def report_config(path, shape):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    inputs = torch.randn(1, 3, *shape)
    # dense models are counted on their feature path, as mmdet/mmseg do
    target = model.extract_feat if hasattr(model, 'extract_feat') else model

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return target(x)

    flops, _ = count(Features(), inputs)
    params = parameter_count(model)[''] / 1e6
    return dict(config=path, shape=list(shape), params_M=round(params, 4),
                gmacs_features=round(flops / 1e9, 4))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='an mm* config file')
    parser.add_argument('--arch', help=f'one of {", ".join(VARIANTS)} or all')
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1333),
                        metavar=('H', 'W'), help='input size for configs')
    parser.add_argument('--deploy', action='store_true',
                        help='count the re-parameterised (fused) network')
    parser.add_argument('--json', help='also write the rows to this file')
    args = parser.parse_args(argv)
    if bool(args.config) == bool(args.arch):
        parser.error('give either a config file or --arch')
    if args.arch:
        names = list(VARIANTS) if args.arch == 'all' else [args.arch]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            parser.error(f'unknown --arch {unknown[0]!r}; valid: '
                         f'{", ".join(VARIANTS)}, all')
        rows = [report_arch(n, args.deploy)
                for n in track(names, f'counting FLOPs of {len(names)} '
                               'variants')]
    else:
        rows = [report_config(args.config, args.shape)]
    for row in rows:
        print('  '.join(f'{k}={v}' for k, v in row.items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    sys.exit(main() is None)
