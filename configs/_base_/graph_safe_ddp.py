# Under a launcher (tools/dist_train.sh, slurm_train.sh), the DDP wrapper
# that CUDAGraphTrainingHook needs: built on a side stream, the backbone
# channels-last before wrapping (mmtinyvim.engine.hooks). Eager DDP through
# it equals mmengine's own wrapper. Every runtime base includes this file.
model_wrapper_cfg = dict(
    type='GraphSafeDistributedDataParallel', broadcast_buffers=False,
    find_unused_parameters=False)
