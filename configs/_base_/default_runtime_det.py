# Runtime shared by the detection configs (mmdet 3.x).
# the graph-safe DDP wrapper (model_wrapper_cfg)
_base_ = ['./graph_safe_ddp.py']
default_scope = 'mmdet'
custom_imports = dict(
    imports=['mmtinyvim', 'mmtinyvim.datasets.coco'],
    allow_failed_imports=False)

# checkpoint: SafeCheckpointHook (mmtinyvim.engine.safety) writes through a
# temporary file + rename and deletes old checkpoints only afterwards
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmtinyvim.engine.safety (registered by custom_imports' mmtinyvim):
    # one training per work_dir, and no optimizer step on NaN/inf
    work_dir_claim=dict(type='WorkDirClaimHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook', max_consecutive_skips=10),
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

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
