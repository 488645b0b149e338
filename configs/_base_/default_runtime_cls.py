# Runtime shared by the ImageNet classification configs (mmpretrain 1.x):
# mmpretrain's own runtime (scope, hooks, environment, visualizer, randomness)
# plus our hooks and the graph-safe DDP wrapper (model_wrapper_cfg)
_base_ = ['mmpretrain::_base_/default_runtime.py', './graph_safe_ddp.py']
custom_imports = dict(
    imports=['mmtinyvim', 'mmtinyvim.datasets.imagenet'],
    allow_failed_imports=False)

# checkpoint: SafeCheckpointHook (mmtinyvim.engine.checkpoint_hook) writes
# through a temporary file + rename (its atomic_local file backend) and
# deletes old checkpoints only afterwards
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook', max_keep_ckpts=3,
                    save_best='auto'),
    # mmtinyvim.engine (registered by custom_imports' mmtinyvim): one
    # training per work_dir; the configs' optimizer wrappers
    # (NonFiniteGuard(Amp)OptimWrapper) take no step on NaN/inf and this hook
    # says which iteration, loss terms and images it was (it refuses a plain
    # OptimWrapper)
    work_dir_claim=dict(type='WorkDirClaimHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook'),
    visualization=dict(type='VisualizationHook', enable=False))

# re-seeds python / numpy / torch from (seed, iteration or epoch), so that
# --resume after a crash draws the random numbers of an uninterrupted run;
# on a GPU, the backbone's forward and backward are replayed as CUDA graphs
# (every training batch has one shape here: fixed crops, drop_last), and
# where that cannot run (CPU) training stays as it is and the log says why;
# tools/train.py --no-cuda-graph leaves it out (registered by
# custom_imports' mmtinyvim; docs/benchmark.md, run H)
custom_hooks = [
    dict(type='ResumableRandomnessHook'),
    dict(type='CUDAGraphTrainingHook', required=False),
    # validation and testing on a folded copy of the backbone (channels-last
    # and CUDA graphs on a GPU); the trained weights stay as they are;
    # tools/test.py --no-deploy removes it
    dict(type='DeployHook'),
    # mmengine's load_from / resume / Pretrained through mmtinyvim's safe
    # loader (torch weights_only) also from the toolboxes' own tools
    dict(type='SafeLoadingHook'),
]
