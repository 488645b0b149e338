"""What runs the models fast and trains/tests them: deploy folding, the
explicit fast paths, the runner hooks and the mixed-precision check.

Importing this package only registers the hooks with mmengine
(:class:`ResumableRandomnessHook`, :class:`CUDAGraphTrainingHook`,
:class:`DeployHook`, :class:`SafeLoadingHook` and the safety hooks), the
guarded optimizer wrappers (:class:`NonFiniteGuardOptimWrapper`,
:class:`NonFiniteGuardAmpOptimWrapper`) and the atomic local file backend
of :class:`SafeCheckpointHook`; the shipped configs name them. Nothing outside the package
is changed by the import.

* :mod:`.graphs`: CUDA-graph capture and the steps the fast paths share;
* :mod:`.training_graphs`: training through CUDA graphs
  (:func:`for_training`, :class:`TrainingGraphs`);
* :mod:`.inference`: :func:`for_inference` and the folded copy
  :class:`DeployHook` serves validation and testing with
  (:class:`InferencePath`);
* :mod:`.quiet`: the unactionable third-party warnings, silenced for one
  run of our tools.
"""
from ..stack import check_stack

check_stack(('mmengine', ), what='mmtinyvim.engine (the runner hooks)')

from .deploy import ClassifierLogits, switch_to_deploy  # noqa: E402
from .graphs import (capture_cuda_graph, compile_static, enable_cudnn_search,
                     to_memory_format)
from .hooks import (CUDAGraphTrainingHook, DeployHook,
                    GraphSafeDistributedDataParallel,
                    ResumableRandomnessHook, SafeLoadingHook,
                    add_cuda_graph_hook, add_deploy_hook,
                    reseed_global_generators, remove_cuda_graph_hook,
                    remove_deploy_hook)
from .inference import (InferenceFunction, InferencePath, for_inference,
                        plain_inference)
from .optim import MergedGroupsOptimWrapperConstructor, merge_param_groups
from .quiet import quiet_logger, quiet_run
from .atomic_io import atomic_write_text, commit_file
from .checkpoint_hook import (CheckpointWriteError, SafeCheckpointHook,
                              newest_intact_checkpoint)
from .nonfinite import NonFiniteGuardHook, NonFiniteLossError
from .optim_wrappers import (NonFiniteGuardAmpOptimWrapper,
                             NonFiniteGuardOptimWrapper)
from .teardown import init_cpu_process_group, teardown_distributed
from .training_defaults import add_safety_hooks
from .work_dir import (WorkDirClaimedError, WorkDirClaimHook,
                       WorkDirHasCheckpointsError, claim_work_dir,
                       release_work_dir)
from .training_graphs import (TrainingGraphs, for_training,
                              record_training_graphs)

__all__ = ['MergedGroupsOptimWrapperConstructor', 'merge_param_groups',
           'TrainingGraphs', 'InferenceFunction', 'InferencePath',
           'plain_inference',
           'capture_cuda_graph', 'compile_static',
           'enable_cudnn_search', 'for_inference', 'for_training',
           'record_training_graphs', 'to_memory_format', 'ClassifierLogits',
           'switch_to_deploy', 'CUDAGraphTrainingHook', 'DeployHook',
           'GraphSafeDistributedDataParallel',
           'ResumableRandomnessHook', 'SafeLoadingHook',
           'add_cuda_graph_hook', 'add_deploy_hook',
           'reseed_global_generators', 'remove_cuda_graph_hook',
           'remove_deploy_hook', 'quiet_logger', 'quiet_run',
           'atomic_write_text', 'commit_file',
           'CheckpointWriteError', 'NonFiniteGuardHook',
           'NonFiniteLossError', 'SafeCheckpointHook',
           'WorkDirClaimedError', 'WorkDirClaimHook',
           'WorkDirHasCheckpointsError', 'add_safety_hooks',
           'claim_work_dir',
           'NonFiniteGuardOptimWrapper', 'NonFiniteGuardAmpOptimWrapper',
           'newest_intact_checkpoint', 'init_cpu_process_group',
           'release_work_dir', 'teardown_distributed']
