"""Train a config for N iterations under autocast and report, per iteration,
whether the losses and the gradients stay finite.

    # float16 with dynamic loss scaling (mmengine AmpOptimWrapper), on a GPU
    python tools/analysis_tools/amp_check.py \\
        configs/maskrcnn_tinyvim_s_coco.py --dtype float16 --iters 50 \\
        --demo-data
    # bfloat16 on CPU
    python tools/analysis_tools/amp_check.py \\
        configs/fpn_mobilemamba_t2_ade20k.py --dtype bfloat16 --device cpu \\
        --iters 50 --demo-data

``--demo-data`` writes the synthetic dataset of the config's task
(``mmtinyvim.datasets.make_demo_data``) into a temporary directory and points
the training set there; otherwise the config's data is used. The backbone
starts from its own initialisation unless ``--keep-pretrained`` is given.
The learning rate is the optimizer's base value throughout (no warm-up).

Prints one line per iteration (loss, gradient norm, loss scale, finiteness)
and a verdict; exits with status 1 on a non-finite loss or gradient, or when
the loss scaler had to skip more than ``--max-skipped-steps`` steps.
"""
import argparse
import os
import sys
import tempfile

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmtinyvim.engine.amp import (DTYPES, amp_config, summarize,
                                             train_under_autocast)

# default_scope -> (demo task, dataset root inside the demo out-root)
DEMO_TASKS = {
    'mmdet': ('coco', 'coco/'),
    'mmseg': ('ade', 'ade/ADEChallengeData2016'),
    'mmpretrain': ('imagenet', 'imagenet'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check that training under autocast stays finite')
    parser.add_argument('config', help='train config file')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default=None,
                        help='default: float16 on CUDA, bfloat16 on CPU')
    parser.add_argument('--device', choices=('cuda', 'cpu'),
                        default='cuda' if torch.cuda.is_available() else
                        'cpu')
    parser.add_argument('--iters', type=int, default=50)
    parser.add_argument('--batch-size', type=int, default=None,
                        help='override train_dataloader.batch_size')
    parser.add_argument('--demo-data', action='store_true',
                        help='train on freshly generated synthetic data')
    parser.add_argument('--keep-pretrained', action='store_true',
                        help="keep the backbone's Pretrained init_cfg")
    parser.add_argument('--max-skipped-steps', type=int, default=5,
                        help='float16: loss-scaler skipped steps tolerated')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.dtype is None:
        args.dtype = 'float16' if args.device == 'cuda' else 'bfloat16'
    if args.dtype == 'float16' and args.device == 'cpu':
        parser.error('--dtype float16 needs --device cuda (loss scaling); '
                     'use --dtype bfloat16 on CPU')
    return args


def use_demo_data(cfg, out_root):
    from mmtinyvim.datasets.make_demo_data import make_demo_data
    scope = cfg.get('default_scope')
    if scope not in DEMO_TASKS:
        raise ValueError(f'--demo-data: no demo data for default_scope='
                         f'{scope!r}; valid: {", ".join(DEMO_TASKS)}')
    task, root = DEMO_TASKS[scope]
    make_demo_data(task, out_root, num_train=16, num_val=1)
    cfg.train_dataloader.dataset.data_root = os.path.join(out_root, root)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.config):
        sys.exit(f'error: config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.log_level = 'WARNING'
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    if args.batch_size:
        cfg.train_dataloader.batch_size = args.batch_size
    if not args.keep_pretrained:
        cfg.model.backbone.init_cfg = None
    for key in ('val', 'test'):  # training only: no evaluator, no val data
        for suffix in ('_dataloader', '_cfg', '_evaluator'):
            cfg[key + suffix] = None
    with tempfile.TemporaryDirectory() as scratch:
        cfg.work_dir = args.work_dir or scratch
        if args.demo_data:
            use_demo_data(cfg, os.path.join(scratch, 'data'))
        cfg = amp_config(cfg, args.dtype, args.device)
        runner = Runner.from_cfg(cfg)
        runner.model.to(args.device)
        device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                       else 'CPU')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        print(f'{args.config}: {args.iters} iterations, {args.dtype} '
              f'autocast on {device_name}, optimizer wrapper {wrapper}')
        records = train_under_autocast(runner, args.iters, args.dtype)
    passed, verdict = summarize(records, args.max_skipped_steps)
    print(verdict)
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
