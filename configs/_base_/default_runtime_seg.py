# Restates mmseg's own base (mmseg::_base_/default_runtime.py) instead of
# inheriting it, as `mmseg::` cannot be resolved on the onedl stack
# (onedl-mmengine 0.10.12, onedl-mmsegmentation 1.4.2): Config.fromfile
# raises "ModuleNotFoundError: mmsegmentation is not installed".
# mmengine.config.Config._get_cfg_path maps the scope through
# mmengine.config.utils.MODULE2PACKAGE ('mmseg' -> 'mmsegmentation', the
# OpenMMLab distribution name), and mmengine.utils.is_installed finds no
# distribution and no module of that name (there they are
# onedl-mmsegmentation and mmseg), although mmseg/.mim/configs is
# installed. mmdet:: and mmpretrain:: map to their module names and
# resolve on both stacks; mmengine 0.10.7 resolves mmseg:: too.
# (tests/test_config_bases.py fails once the onedl stack resolves it.)
# Runtime shared by the semantic segmentation configs (mmseg 1.x).
# the graph-safe DDP wrapper (model_wrapper_cfg)
_base_ = ['./graph_safe_ddp.py']
default_scope = 'mmseg'
custom_imports = dict(
    imports=['mmtinyvim', 'mmtinyvim.datasets.ade'],
    allow_failed_imports=False)

# checkpoint: SafeCheckpointHook (mmtinyvim.engine.checkpoint_hook) writes
# through a temporary file + rename (its atomic_local file backend) and
# deletes old checkpoints only afterwards
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=8000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmtinyvim.engine (registered by custom_imports' mmtinyvim): one
    # training per work_dir; the configs' optimizer wrappers
    # (NonFiniteGuard(Amp)OptimWrapper) take no step on NaN/inf and this hook
    # says which iteration, loss terms and images it was (it refuses a plain
    # OptimWrapper)
    work_dir_claim=dict(type='WorkDirClaimHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook'),
    # draw=False (the default): tools/test.py --show/--show-dir (ours and
    # mmseg's) switch it on; mmseg's warning about draw=False is silenced by
    # mmtinyvim.engine.quiet, as no setting avoids it
    visualization=dict(type='SegVisualizationHook'))

# re-seeds python / numpy / torch from (seed, iteration or epoch), so that
# --resume after a crash draws the random numbers of an uninterrupted run
# (registered by custom_imports' mmtinyvim)
custom_hooks = [
    dict(type='ResumableRandomnessHook'),
    # on a GPU the backbone trains through CUDA graphs (the crops give every
    # batch one shape); elsewhere the hook logs why it is skipped;
    # --no-cuda-graph removes it
    dict(type='CUDAGraphTrainingHook', required=False),
    # validation and testing on a folded copy of the backbone (channels-last
    # and CUDA graphs on a GPU); the trained weights stay as they are;
    # tools/test.py --no-deploy removes it
    dict(type='DeployHook'),
    # mmengine's load_from / resume / Pretrained through mmtinyvim's safe
    # loader (torch weights_only) also from the toolboxes' own tools
    dict(type='SafeLoadingHook'),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
