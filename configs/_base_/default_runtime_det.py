# Runtime shared by the detection configs (mmdet 3.x): mmdet's own runtime
# (scope, hooks, environment, visualizer, log processor) plus our hooks and
# the graph-safe DDP wrapper (model_wrapper_cfg)
_base_ = ['mmdet::_base_/default_runtime.py', './graph_safe_ddp.py']
custom_imports = dict(
    imports=['mmtinyvim', 'mmtinyvim.datasets.coco'],
    allow_failed_imports=False)

# checkpoint: SafeCheckpointHook (mmtinyvim.engine.checkpoint_hook) writes
# through a temporary file + rename (its atomic_local file backend) and
# deletes old checkpoints only afterwards
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook'),
    # mmtinyvim.engine (registered by custom_imports' mmtinyvim): one
    # training per work_dir; the configs' optimizer wrappers
    # (NonFiniteGuard(Amp)OptimWrapper) take no step on NaN/inf and this hook
    # says which iteration, loss terms and images it was (it refuses a plain
    # OptimWrapper)
    work_dir_claim=dict(type='WorkDirClaimHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook'),
    visualization=dict(type='DetVisualizationHook'))

# re-seeds python / numpy / torch from (seed, iteration or epoch), so that
# --resume after a crash draws the random numbers of an uninterrupted run
# (registered by custom_imports' mmtinyvim)
custom_hooks = [
    dict(type='ResumableRandomnessHook'),
    # on a GPU the backbone trains through CUDA graphs, one per batch shape:
    # a batch is padded (bottom/right, like mmdet's own batch padding) to
    # the smallest of these sizes that holds it within 1.5x its pixels, and
    # the backbone's outputs are cropped back, so the heads see the batch's
    # own size. The sizes are the 1333x800 keep-ratio pipelines' landscape
    # and portrait batches (4:3 images and the longest); a pipeline with
    # other sizes (SSDLite) gets a graph per batch shape up to max_graphs.
    # Elsewhere the hook logs why it is skipped; --no-cuda-graph removes it.
    dict(type='CUDAGraphTrainingHook', required=False, max_graphs=6,
         batch_shapes=[(800, 1088), (1088, 800), (800, 1344), (1344, 800)]),
    # validation and testing on a folded copy of the backbone (channels-last
    # and CUDA graphs on a GPU); the trained weights stay as they are;
    # tools/test.py --no-deploy removes it
    dict(type='DeployHook'),
    # mmengine's load_from / resume / Pretrained through mmtinyvim's safe
    # loader (torch weights_only) also from the toolboxes' own tools
    dict(type='SafeLoadingHook'),
]
