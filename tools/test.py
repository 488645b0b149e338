"""Evaluate a checkpoint with a config's test dataloader and evaluator.

The task follows the config's ``default_scope`` (mmdet, mmseg or
mmpretrain); the options are those of mmdet's and mmseg's tools/test.py.

    python tools/test.py configs/maskrcnn_tinyvim_s_coco.py CHECKPOINT
    tools/dist_test.sh configs/maskrcnn_tinyvim_s_coco.py CHECKPOINT 8

Memory: evaluation works at each image's original size (instance masks
pasted at it, class scores resized to it), so an image with more pixels than
a square of the task's ``MAX_SIDE`` (mmtinyvim.datasets.size_limit; the
values: ``--help``, README "Robustness") stops the run with one error naming
the file, its size and the limit, instead of exhausting memory.
``--max-side N`` sets the limit: the ``max_side`` of the test pipeline's
``CheckMaxImageSize`` (one is added after ``LoadImageFromFile`` to a config
without it). No value disables the check; a machine with the memory for
larger images takes a larger N.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmtinyvim.datasets.size_limit import MAX_SIDE, bound_image_size
from mmtinyvim.engine import (add_deploy_hook, quiet_logger, quiet_run,
                              remove_deploy_hook)
from mmtinyvim.engine.config_check import (CfgOptionsAction,
                                           ConfigCheckError, check_work_dir)
from mmtinyvim.utils.checkpoint import (NonFiniteWeightsError,
                                        require_finite, require_fit,
                                        safe_loading_in_mmengine,
                                        safe_torch_load, unwrap_state_dict)
from train import init_cpu_process_group, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (evaluate) a model (detection, segmentation or '
        'classification, as the config says)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        help='detection / classification: dump the predictions to this '
        'pickle file; segmentation: save the predicted label maps to this '
        'directory')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (relative to the '
        'work dir for detection, as in mmdet)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument(
        '--deploy', action=argparse.BooleanOptionalAction, default=None,
        help='default: the config\'s DeployHook (every shipped config has '
        'one) evaluates a folded copy of the backbone (on a GPU '
        'channels-last with CUDA graphs for repeated shapes). --deploy '
        'folds the whole model in place after loading instead '
        '(DeployHook(in_place=True): heads too; not with an EMA hook). '
        '--no-deploy removes DeployHook: the network is evaluated as '
        'trained')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation with the config\'s tta_model and '
        'tta_pipeline')
    parser.add_argument(
        '--max-side', type=int, metavar='N',
        help='refuse images with more pixels than an N x N square; '
        'evaluation works at the original image size, so memory grows with '
        'the pixel count (default: the config\'s toolbox\'s limit, ' +
        ', '.join(f'{scope} {side}' for scope, side in MAX_SIDE.items()) +
        ')')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.max_side is not None and args.max_side < 32:
        parser.error(f'--max-side must be >= 32, got {args.max_side}')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg, scope, args):
    """Turn the config's visualization hook on, the way each toolbox's own
    test.py does."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show / --show-dir need a visualization hook in '
                           'default_hooks')
    hook = hooks.visualization
    if scope == 'mmpretrain':
        hook.enable = True
        if args.show:
            hook.update(show=True, wait_time=args.wait_time)
        if args.show_dir:
            hook.out_dir = args.show_dir
        return
    hook.draw = True
    if args.show:
        hook.update(show=True, wait_time=args.wait_time)
    if args.show_dir:
        if scope == 'mmdet':
            hook.test_out_dir = args.show_dir
        else:
            cfg.visualizer.save_dir = args.show_dir
            hook.interval = 1


def require_checkpoint_fits(model, path):
    """Evaluation takes the checkpoint's weights as they are: a checkpoint
    of another model (another family, variant, head or class count) raises
    one error naming the missing, unexpected and mis-shaped keys, where
    mmengine's non-strict load would evaluate the unloaded model."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    state_dict = unwrap_state_dict(safe_torch_load(path))
    require_fit(model, state_dict, what=f'Checkpoint {path!r}')
    # NaN / inf weights would be evaluated to a meaningless score
    require_finite(state_dict, what=f'Checkpoint {path!r}')


def main(argv=None):
    # this run only: the unactionable third-party warnings hidden, and
    # mmengine's checkpoint loading under torch's weights_only (its loaders
    # are put back when main ends)
    with quiet_run(), safe_loading_in_mmengine():
        _main(argv)


def _main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: '
                                f'{args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    scope = cfg.default_scope

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir)
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        enable_visualization(cfg, scope, args)

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise RuntimeError(f'{args.config} defines no tta_model / '
                               'tta_pipeline; --tta is not available')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    bound_image_size(cfg, args.max_side)

    if args.deploy:
        add_deploy_hook(cfg)
    elif args.deploy is False:
        remove_deploy_hook(cfg)

    if args.out is not None and scope == 'mmseg':
        cfg.test_evaluator.output_dir = args.out
        cfg.test_evaluator.keep_results = True

    init_cpu_process_group(cfg)
    runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
              Runner.from_cfg(cfg))
    quiet_logger(runner.logger)
    require_checkpoint_fits(runner.model, args.checkpoint)
    if args.deploy is False:
        runner.logger.info('--no-deploy: the network is evaluated as '
                           'trained (no DeployHook)')

    if args.out is not None and scope != 'mmseg':
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl or .pickle file')
        if scope == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(
                DumpDetResults(out_file_path=args.out))
        else:
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))

    runner.test()


def run(argv=None):
    """``main`` as a command: a config key nothing reads or a checkpoint
    with NaN / inf weights (the user's input, not a bug) is printed as its
    message alone and exits with status 1; every other error keeps its
    traceback."""
    try:
        main(argv)
    except (ConfigCheckError, NonFiniteWeightsError) as err:
        print(f'Error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    run()
