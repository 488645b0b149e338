"""CUDA-graph capture and the small steps the fast paths share: checking
an example batch, memory formats, cuDNN's search, static compilation, one
graph's capture, and handing outputs back in the layout of the network as
built.

A CUDA graph replays fixed memory: every call must use the recorded shape,
dtype and device. Outputs come back as fresh tensors in the NCHW layout of
the network as built, whatever layout it ran in (mmcv's ops, RoIAlign among
them, read NCHW memory).
"""
from typing import Callable, Optional

import torch
import torch.nn as nn

__all__ = ['capture_cuda_graph', 'compile_static', 'enable_cudnn_search',
           'in_memory_format', 'to_memory_format']


def _describe(x: torch.Tensor) -> str:
    return f'{tuple(x.shape)} {x.dtype} on {x.device}'


def _fits(images: torch.Tensor, recorded: torch.Tensor) -> bool:
    """Whether a graph recorded for ``recorded`` can replay ``images``."""
    return (images.shape == recorded.shape and images.dtype == recorded.dtype
            and images.device == recorded.device)


def _resolve_cuda_graph(cuda_graph: Optional[bool], model: nn.Module,
                        example: torch.Tensor) -> bool:
    on_cuda = example.is_cuda and all(
        p.is_cuda for p in model.parameters())
    if cuda_graph is None:
        return on_cuda
    if cuda_graph and not on_cuda:
        raise ValueError(
            'cuda_graph=True needs the model and the example input on a CUDA '
            f'device (input: {_describe(example)}); pass cuda_graph=False or '
            'leave it None (CUDA graphs wherever CUDA is used)')
    return bool(cuda_graph)


def _check_example(example) -> None:
    if not isinstance(example, torch.Tensor) or example.dim() != 4:
        raise ValueError(
            'example must be an image batch tensor of shape (N, C, H, W), '
            f'got {getattr(example, "shape", type(example).__name__)}')


def _as_built(outputs, fresh: bool = False):
    """Feature maps in the contiguous (NCHW) layout of the network as
    built, whatever layout the fast path ran in: mmcv's CUDA ops (RoIAlign
    in every two-stage detector) read NCHW memory and ignore strides.
    ``fresh``: always new tensors (outputs of a graph's static buffers)."""
    def convert(o):
        if not isinstance(o, torch.Tensor):
            return o
        if fresh:
            return o.clone(memory_format=torch.contiguous_format)
        return o.contiguous()

    if isinstance(outputs, (tuple, list)):
        return type(outputs)(convert(o) for o in outputs)
    return convert(outputs)


def to_memory_format(model: nn.Module, channels_last: bool
                     ) -> torch.memory_format:
    """Convert ``model`` in place; returns the memory format its inputs
    should have."""
    memory_format = (torch.channels_last if channels_last else
                     torch.contiguous_format)
    model.to(memory_format=memory_format)
    return memory_format


def enable_cudnn_search() -> None:
    """cuDNN's algorithm search: pays for fixed input shapes (process-wide
    setting)."""
    torch.backends.cudnn.benchmark = True


def compile_static(model: nn.Module, mode: Optional[str] = None
                   ) -> Callable:
    """``torch.compile`` with static shapes (inductor, ``mode`` as
    torch.compile's)."""
    return torch.compile(model, dynamic=False, mode=mode)


def capture_cuda_graph(fn: Callable, device=None, warmup: int = 3,
                       pool=None) -> Callable:
    """Record ``fn()`` (static inputs and outputs) as a CUDA graph after
    ``warmup`` eager calls on a side stream (compilation, cuDNN's algorithm
    search, allocator warm-up), in memory pool ``pool`` (None: its own);
    returns the graph's ``replay``."""
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        fn()
    return graph.replay


def _autocast_state() -> tuple:
    if torch.is_autocast_enabled('cuda'):
        return True, torch.get_autocast_dtype('cuda')
    return False, None


def in_memory_format(module: nn.Module,
                     memory_format: torch.memory_format) -> bool:
    """Whether every 4-d parameter of ``module`` is laid out in
    ``memory_format`` (converting then changes nothing; converting a model
    that DDP already wraps must be avoided, see
    ``GraphSafeDistributedDataParallel``)."""
    return all(p.is_contiguous(memory_format=memory_format)
               for p in module.parameters() if p.dim() == 4)
