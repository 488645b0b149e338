"""Train a detector, segmentor or classifier from a config.

The task follows the config's ``default_scope`` (mmdet, mmseg or
mmpretrain); the options are those of mmdet's and mmseg's tools/train.py.

    python tools/train.py configs/maskrcnn_tinyvim_s_coco.py
    tools/dist_train.sh configs/maskrcnn_tinyvim_s_coco.py 8
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmtinyvim.engine import (add_cuda_graph_hook, add_safety_hooks,
                              quiet_logger, quiet_run,
                              remove_cuda_graph_hook,
                              teardown_distributed)
from mmtinyvim.engine.checkpoint_hook import newest_intact_checkpoint
from mmtinyvim.engine.config_check import (CfgOptionsAction,
                                           ConfigCheckError, check_work_dir)
from mmtinyvim.engine.config_check import load_config as load_checked_config
from mmtinyvim.models.pretrained import (MissingPretrainedError,
                                         check_pretrained_files)
from mmtinyvim.utils.checkpoint import (ResumeCheckpointError,
                                        check_resume_checkpoint,
                                        safe_loading_in_mmengine)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model (detection, segmentation or '
        'classification, as the config says)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic mixed precision training')
    graphs = parser.add_mutually_exclusive_group()
    graphs.add_argument(
        '--cuda-graph', nargs='?', const='plain', choices=['plain', 'compile'],
        help='channels-last and the backbone\'s forward/backward replayed as '
        'CUDA graphs, one per batch shape (CUDAGraphTrainingHook, which '
        'every shipped config carries for a GPU; also under '
        'dist_train.sh), and an error where it cannot run; "--cuda-graph '
        'compile" also compiles the backbone with torch.compile')
    graphs.add_argument(
        '--no-cuda-graph', action='store_true',
        help='train the backbone eagerly: leave out the shipped configs\' '
        'default CUDAGraphTrainingHook')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by (GPUs x batch per GPU) / '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=2 "model.backbone.arch=\'b\'"')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path, cfg_options=None, launcher='none'):
    """The config with overrides applied and checked
    (:func:`mmtinyvim.engine.config_check.load_config`), and, on a machine
    without CUDA, NCCL replaced by gloo for distributed runs."""
    cfg = load_checked_config(path, cfg_options)
    cfg.launcher = launcher
    if launcher != 'none' and not torch.cuda.is_available():
        use_cpu_processes(cfg)
    return cfg


def use_cpu_processes(cfg):
    """Distributed run without CUDA: gloo instead of nccl, and
    DistributedDataParallel without device ids (CPU modules)."""
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        print('No CUDA device: distributed backend nccl -> gloo')
        dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def has_amp_device():
    """Whether mmengine's AmpOptimWrapper can run here (it asserts a CUDA,
    NPU, MLU or MUSA device)."""
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def check_amp_device(cfg, config_path, by_flag):
    """One clear error where mmengine's AmpOptimWrapper would fail: on a
    machine without a GPU (mmengine 0.10.7 offers no CPU autocast for
    training, float16 or bfloat16)."""
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') != 'AmpOptimWrapper' or has_amp_device():
        return
    source = ('--amp' if by_flag else
              f"{config_path} (optim_wrapper.type='AmpOptimWrapper')")
    if by_flag:
        fix = 'On CPU, train in float32: leave out --amp.'
    else:
        extra = [k for k in ('loss_scale', 'dtype', 'use_fsdp')
                 if k in wrapper]
        fix = ('On CPU, train in float32 with --cfg-options '
               'optim_wrapper.type=OptimWrapper' +
               (f' after removing optim_wrapper keys {extra} from the config'
                if extra else '') + '.')
    raise RuntimeError(
        f'{source}: mixed-precision training needs a CUDA GPU (mmengine '
        '0.10.7\'s AmpOptimWrapper, float16 with loss scaling, runs on CUDA, '
        'NPU, MLU or MUSA devices only) and this machine has none. '
        f'{fix} mmengine has no CPU mixed-precision training: '
        'AmpOptimWrapper refuses the CPU also with dtype=bfloat16. To check '
        'that a config stays finite under bfloat16 autocast on CPU, run '
        'python tools/analysis_tools/amp_check.py CONFIG --dtype bfloat16 '
        '--device cpu --demo-data.')


def init_cpu_process_group(cfg):
    """mmengine 0.10.7 binds every process started by torchrun to a CUDA
    device, which fails without one. On such a machine the gloo process
    group is started here, from torchrun's environment, and the Runner
    finds it ready."""
    if (cfg.launcher == 'pytorch' and not torch.cuda.is_available()
            and not torch.distributed.is_initialized()):
        torch.distributed.init_process_group(
            backend=cfg.env_cfg.dist_cfg.get('backend', 'gloo'))


def resume_source(cfg, work_dir):
    """The local checkpoint a run of ``cfg`` resumes from, or None: with
    ``resume``, the ``load_from`` file, else the one SafeCheckpointHook
    picks in ``work_dir`` (the newest intact one). A named file that does
    not exist, or a URL, is left to the hook and mmengine."""
    if not cfg.get('resume'):
        return None
    load_from = cfg.get('load_from')
    if load_from is None:
        return newest_intact_checkpoint(work_dir, warn=lambda message: None)
    return load_from if osp.isfile(load_from) else None


def check_resume(runner, cfg, config_path):
    """One :class:`ResumeCheckpointError` before training when the file
    the run resumes from is not a training state of this config's model
    (mmengine's ``Runner.resume`` fails with ``KeyError: 'epoch'`` on a
    file of weights alone, and loads another model's weights non-strictly
    with a warning)."""
    path = resume_source(cfg, osp.abspath(cfg.work_dir))
    if path is None:
        return
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    check_resume_checkpoint(path, model, config_path)


def main(argv=None):
    # this run only: the unactionable third-party warnings hidden, and
    # resume / load_from of runner checkpoints under torch's weights_only
    # (mmengine's loaders are put back when main ends)
    with quiet_run(), safe_loading_in_mmengine():
        _main(argv)


def _main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir)

    if args.amp:
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    check_amp_device(cfg, args.config, args.amp)
    # crash-safe checkpoints, one training per work_dir, no step on NaN
    # (the shipped configs have them already; other configs get them here)
    add_safety_hooks(cfg)
    if args.cuda_graph:
        add_cuda_graph_hook(cfg, compile=args.cuda_graph == 'compile')
    elif args.no_cuda_graph:
        remove_cuda_graph_hook(cfg)

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.'
                               'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    init_cpu_process_group(cfg)
    runner, finished = None, False
    try:
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
                  Runner.from_cfg(cfg))
        quiet_logger(runner.logger)
        check_resume(runner, cfg, args.config)
        # a missing ImageNet file is one message before Runner.train builds
        # any dataset (the backbone's init_weights says the same later, for
        # other tools)
        check_pretrained_files(runner.model)
        runner.train()
        finished = True
    finally:
        # workers joined, ranks met, process group destroyed: nothing left
        # running when the interpreter exits, however loaded the machine
        teardown_distributed(runner, barrier=finished)


def run(argv=None):
    """``main`` as a command: a missing pretrained checkpoint, a config
    key nothing reads or a checkpoint that cannot be resumed (the user's
    setup, not a bug) is printed as its message alone and exits with status
    1; every other error keeps its traceback."""
    try:
        main(argv)
    except (MissingPretrainedError, ConfigCheckError,
            ResumeCheckpointError) as err:
        print(f'Error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    run()
