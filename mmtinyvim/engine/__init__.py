"""What runs the models fast and trains/tests them: deploy folding, the
one-call fast paths, the runner hooks and the mixed-precision check.

Importing this package makes :class:`InferencePath` the dense backbones'
default for inference calls (folded copy, channels-last and CUDA graphs on
CUDA), registers :class:`ResumableRandomnessHook`,
:class:`CUDAGraphTrainingHook`, :class:`DeployHook` and the safety hooks
(:class:`SafeCheckpointHook`, :class:`WorkDirClaimHook`,
:class:`NonFiniteGuardHook`) with mmengine, and makes ``Runner.train``
check the backbones' pretrained files before it builds any dataset
(:mod:`.pretrained`); it also silences, one message each, the third-party
warnings of a normal run that no setting avoids (:mod:`.quiet`).
"""
from .accelerate import (TrainingGraphs, InferencePath,
                         capture_cuda_graph, compile_static,
                         enable_cudnn_search, for_inference, for_training,
                         inference_path_of, install_inference_path,
                         plain_inference, record_training_graphs,
                         run_inference_path,
                         to_memory_format)
from .deploy import ClassifierLogits, switch_to_deploy
from .optim import MergedGroupsOptimWrapperConstructor, merge_param_groups
from .hooks import (CUDAGraphTrainingHook, DeployHook,
                    GraphSafeDistributedDataParallel,
                    ResumableRandomnessHook, add_cuda_graph_hook,
                    add_deploy_hook, reseed_global_generators,
                    remove_cuda_graph_hook)
from .atomic_io import atomic_write_text, commit_file
from .checkpoint_hook import (CheckpointWriteError, SafeCheckpointHook,
                              newest_intact_checkpoint)
from .nonfinite import (NonFiniteGuardHook, NonFiniteLossError,
                        guard_optim_wrapper)
from .teardown import teardown_distributed
from .training_defaults import add_safety_hooks
from .work_dir import (WorkDirClaimedError, WorkDirClaimHook,
                       WorkDirHasCheckpointsError, claim_work_dir,
                       release_work_dir)

__all__ = ['MergedGroupsOptimWrapperConstructor', 'merge_param_groups',
           'TrainingGraphs', 'InferencePath', 'inference_path_of',
           'install_inference_path', 'plain_inference',
           'run_inference_path',
           'capture_cuda_graph', 'compile_static',
           'enable_cudnn_search', 'for_inference', 'for_training',
           'record_training_graphs', 'to_memory_format', 'ClassifierLogits',
           'switch_to_deploy', 'CUDAGraphTrainingHook', 'DeployHook',
           'GraphSafeDistributedDataParallel',
           'ResumableRandomnessHook', 'add_cuda_graph_hook',
           'add_deploy_hook', 'reseed_global_generators',
           'remove_cuda_graph_hook',
           'atomic_write_text', 'commit_file',
           'CheckpointWriteError', 'NonFiniteGuardHook',
           'NonFiniteLossError', 'SafeCheckpointHook',
           'WorkDirClaimedError', 'WorkDirClaimHook',
           'WorkDirHasCheckpointsError', 'add_safety_hooks',
           'claim_work_dir',
           'guard_optim_wrapper', 'newest_intact_checkpoint',
           'release_work_dir', 'teardown_distributed']

install_inference_path()  # the backbones' default inference calls

from . import pretrained as _pretrained  # noqa: E402

_pretrained.install()

from . import quiet as _quiet  # noqa: E402

_quiet.install()  # third-party warnings no setting can avoid, one by one
