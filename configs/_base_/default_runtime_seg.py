# Runtime shared by the semantic segmentation configs (mmseg 1.x): mmseg's
# own runtime (scope, environment, visualizer, log processor, TTA model) plus
# the hooks (mmseg keeps them in its schedules, which we do not inherit) and
# the graph-safe DDP wrapper (model_wrapper_cfg)
_base_ = ['mmseg::_base_/default_runtime.py', './graph_safe_ddp.py']
custom_imports = dict(
    imports=['mmtinyvim', 'mmtinyvim.datasets.ade'],
    allow_failed_imports=False)

# checkpoint: SafeCheckpointHook (mmtinyvim.engine.safety) writes through a
# temporary file + rename and deletes old checkpoints only afterwards
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=8000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmtinyvim.engine.safety (registered by custom_imports' mmtinyvim):
    # one training per work_dir, and no optimizer step on NaN/inf
    work_dir_claim=dict(type='WorkDirClaimHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook', max_consecutive_skips=10),
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
