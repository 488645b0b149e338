"""Training through CUDA graphs: :func:`record_training_graphs` (one
module, one batch shape), :func:`for_training` (the one call for a plain
training loop) and :class:`TrainingGraphs` (the ``forward`` that
:class:`mmtinyvim.engine.CUDAGraphTrainingHook` installs: one graph per
batch shape, padded to shared shapes).

    from mmtinyvim.engine import for_training

    forward = for_training(model, example_batch, dtype=torch.float16)
    loss = criterion(forward(batch), labels)   # inside your autocast region
"""
import warnings
import weakref
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .graphs import (_as_built, _autocast_state, _check_example, _describe,
                     _fits, compile_static, in_memory_format,
                     to_memory_format)

__all__ = ['TrainingGraphs', 'check_graph_options', 'for_training',
           'record_training_graphs']


def record_training_graphs(module: nn.Module, sample: torch.Tensor,
                            dtype: Optional[torch.dtype]) -> Callable:
    """Forward and backward of ``module`` (train mode; a module or its
    ``torch.compile`` wrapper) for ``sample`` as CUDA graphs; returns the
    graphed forward and leaves ``module.forward`` and its buffers as they
    were (the recording's warm-up passes would otherwise count the sample
    batch in BatchNorm's running statistics several times)."""
    saved = [buffer.detach().clone() for buffer in module.buffers()]
    own_forward = module.__dict__.get('forward')
    with torch.autocast(device_type='cuda', dtype=dtype,
                        enabled=dtype is not None, cache_enabled=False), \
            warnings.catch_warnings():
        # the recording's warm-up backward runs on a side stream, while the
        # parameters' gradient accumulators were made on the default one;
        # torch warns about the extra synchronisation, which costs nothing
        # per step (the graphs are replayed) and leaves the gradients equal
        # to eager training's (docs/benchmark.md, runs F and H)
        warnings.filterwarnings(
            'ignore', message="The AccumulateGrad node's stream does not "
            'match')
        try:
            torch.cuda.make_graphed_callables(module, (sample, ))
            graphed = module.forward  # replay when module.training
        finally:  # also when the capture fails: the module as it was
            if own_forward is None:
                module.__dict__.pop('forward', None)
            else:
                module.forward = own_forward
            with torch.no_grad():
                for buffer, value in zip(module.buffers(), saved):
                    buffer.copy_(value)
    return graphed


def for_training(model: nn.Module,
                 example: torch.Tensor,
                 dtype: Optional[torch.dtype] = torch.float16,
                 channels_last: bool = True,
                 compile: bool = False) -> Callable:
    """``model`` (modified in place: train mode, channels-last) with its
    forward and backward recorded as CUDA graphs, for batches shaped like
    ``example``. Call the result inside the same autocast ``dtype`` as
    here (None: no autocast) and use a fresh loss per step as usual; the
    optimizer step stays outside the graph. Gradients equal the eager
    network's (docs/benchmark.md). ``compile=True`` records the
    ``torch.compile``-d network (static shapes).
    For mmengine training use :class:`mmtinyvim.engine.CUDAGraphTrainingHook`
    (``tools/train.py --cuda-graph``)."""
    _check_example(example)
    if not (example.is_cuda and all(p.is_cuda for p in model.parameters())):
        raise ValueError(
            'for_training records CUDA graphs: it needs the model and the '
            f'example input on a CUDA device (input: {_describe(example)}); '
            'on other devices train the model as it is')
    model.train()
    memory_format = to_memory_format(model, channels_last)
    sample = example.detach().clone().contiguous(memory_format=memory_format)
    graphed = record_training_graphs(
        compile_static(model) if compile else model, sample, dtype)

    def forward(images):
        if not _fits(images, sample):
            raise ValueError(
                f'the training graphs were recorded for input '
                f'{_describe(sample)}; got {_describe(images)} (drop the '
                'last incomplete batch, e.g. drop_last=True)')
        return graphed(images.contiguous(memory_format=memory_format))

    return forward


def check_graph_options(max_graphs: int, batch_shapes,
                        max_padding: float) -> dict:
    """The options of :class:`TrainingGraphs`, checked; ``batch_shapes``
    as (height, width) tuples, smallest first."""
    if isinstance(max_graphs, bool) or not isinstance(max_graphs, int) or \
            max_graphs < 1:
        raise ValueError(f'max_graphs must be an int >= 1, got '
                         f'{max_graphs!r}')
    shapes = [tuple(s) for s in batch_shapes or ()]
    if not all(len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s)
               for s in shapes):
        raise ValueError('batch_shapes must be (height, width) pairs of '
                         f'positive ints, got {batch_shapes!r}')
    if isinstance(max_padding, bool) or not isinstance(
            max_padding, (int, float)) or not max_padding >= 1:
        raise ValueError(f'max_padding must be a number >= 1, got '
                         f'{max_padding!r}')
    return dict(max_graphs=max_graphs, max_padding=float(max_padding),
                batch_shapes=sorted(set(shapes), key=lambda s: s[0] * s[1]))


class _ReplayMarker(torch.autograd.Function):
    """Identity on a replay's outputs whose autograd node lives exactly as
    long as the autograd graph that will run the replay's backward, and
    whose backward says that it has begun."""

    @staticmethod
    def forward(ctx, graphs, *outputs):
        ctx.graphs = graphs
        return tuple(o.view_as(o) for o in outputs)

    @staticmethod
    def backward(ctx, *grads):
        ctx.graphs.pending = None
        return (None, *grads)


class _Graphs:
    """One recorded shape of :class:`TrainingGraphs`: the graphed forward,
    and whether the graphs' buffers still hold a replay whose backward is
    to come (its autograd graph is alive and has not run backward)."""

    def __init__(self, graphed: Callable):
        self.graphed = graphed
        self.pending = None  # weakref to the last replay's marker node

    def busy(self) -> bool:
        return self.pending is not None and self.pending() is not None

    def __call__(self, images: torch.Tensor):
        outputs = self.graphed(images)
        single = isinstance(outputs, torch.Tensor)
        marked = _ReplayMarker.apply(self, *((outputs, ) if single
                                             else outputs))
        self.pending = weakref.ref(marked[0].grad_fn)
        return marked[0] if single else type(outputs)(marked)


class TrainingGraphs:
    """``module.forward`` replacement that trains through CUDA graphs: a
    training batch (``module.training``, gradients on) is replayed through
    the forward and backward graphs recorded for its shape, dtype and
    autocast state; the first batch of each new shape records them, up to
    ``max_graphs`` shapes. Anything else (evaluation, ``no_grad``, shapes
    beyond the limit, a shape whose recording failed, a second call before
    the first one's backward) runs the module eagerly, with a one-time
    warning per training shape.

    ``batch_shapes``: (height, width) sizes that a smaller training batch
    is zero-padded to (bottom/right, as mmdet and mmseg pad a batch), so
    that detection batches, whose sizes vary with each image's aspect ratio,
    share a few graphs; the smallest that holds the batch is taken, if it
    has at most ``max_padding`` times its pixels. The outputs are cropped
    back to the batch's own size (``ceil(size / stride)``, strides from
    ``module.out_strides``), so the layers after the backbone see exactly
    the shapes of eager training. What changes is the padding that
    BatchNorm's batch statistics see, as a larger batch padding would.
    ``compile=True`` records the ``torch.compile``-d module (static
    shapes)."""

    def __init__(self, module: nn.Module, channels_last: bool = True,
                 compile: bool = False,
                 record: Callable = record_training_graphs,
                 max_graphs: int = 4, batch_shapes=(),
                 max_padding: float = 1.5):
        options = check_graph_options(max_graphs, batch_shapes, max_padding)
        strides = getattr(module, 'out_strides', None)
        if options['batch_shapes'] and strides is None:
            raise ValueError(
                f'batch_shapes needs a backbone with out_strides (to crop '
                f'its outputs back); {type(module).__name__} has none: '
                'leave batch_shapes empty (one graph per batch shape)')
        self.module = module
        self.compile = compile
        self.eager = module.forward
        self.memory_format = (torch.channels_last if channels_last else
                              torch.contiguous_format)
        self.record = record
        self.max_graphs = options['max_graphs']
        self.batch_shapes = options['batch_shapes']
        self.max_padding = options['max_padding']
        self.strides = tuple(strides or ())
        self.graphs = {}
        self.failed = set()
        self.warned = set()

    def install(self) -> 'TrainingGraphs':
        if not in_memory_format(self.module, self.memory_format):
            self.module.to(memory_format=self.memory_format)
        self.module.forward = self
        return self

    def padded_size(self, height: int, width: int) -> tuple:
        """The size a training batch of ``height x width`` is replayed at."""
        for bh, bw in self.batch_shapes:
            if (bh >= height and bw >= width
                    and bh * bw <= self.max_padding * height * width):
                return bh, bw
        return height, width

    def __call__(self, images: torch.Tensor):
        images = images.contiguous(memory_format=self.memory_format)
        if not (self.module.training and torch.is_grad_enabled()
                and images.dim() == 4):
            return _as_built(self.eager(images))
        height, width = images.shape[2:]
        size = self.padded_size(height, width)
        key = (images.shape[:2] + size, images.dtype, images.device,
               *_autocast_state())
        graphs = self._graphs_for(key, images, size)
        if graphs is None:
            return _as_built(self.eager(images))
        if size != (height, width):
            images = F.pad(images, (0, size[1] - width, 0, size[0] - height))
            return _as_built(self._crop(graphs(images), height, width))
        return _as_built(graphs(images))

    def _graphs_for(self, key, images, size) -> Optional[_Graphs]:
        """The graphs that replay this batch (recorded now if it is a new
        shape within the limit), or None (with one warning) to run it
        eagerly."""
        if key in self.failed:
            return None
        graphs = self.graphs.get(key)
        if graphs is None and len(self.graphs) >= self.max_graphs:
            self._warn(key, images, f'graphs are recorded for '
                       f'{self.max_graphs} batch shapes at most (max_graphs)')
            return None
        if graphs is None:
            try:
                graphs = self.graphs[key] = self._record(images, size)
            except RuntimeError as error:  # an op that cannot be captured
                self.failed.add(key)
                self._warn(key, images, f'recording its CUDA graphs failed '
                           f'({type(error).__name__}: {error})')
                return None
        if graphs.busy():
            self._warn(key, images, 'the graphs still hold an earlier call '
                       'whose backward has not run')
            return None
        return graphs

    def _record(self, images, size) -> _Graphs:
        sample = F.pad(images.detach(), (0, size[1] - images.shape[3], 0,
                                         size[0] - images.shape[2]))
        sample = sample.contiguous(memory_format=self.memory_format)
        del self.module.forward  # record the module's own forward
        try:
            target = (compile_static(self.module) if self.compile
                      else self.module)
            return _Graphs(self.record(target, sample, _autocast_state()[1]))
        finally:
            self.module.forward = self

    def _crop(self, outputs, height, width):
        single = isinstance(outputs, torch.Tensor)
        outs = (outputs, ) if single else outputs
        if len(outs) != len(self.strides):
            raise RuntimeError(
                f'{type(self.module).__name__} returned {len(outs)} outputs '
                f'but has {len(self.strides)} out_strides; cannot crop the '
                'padded batch back')
        cropped = tuple(o[..., :-(-height // s), :-(-width // s)]
                        for o, s in zip(outs, self.strides))
        return cropped[0] if single else type(outputs)(cropped)

    def _warn(self, key, images, why: str) -> None:
        if (key, why) not in self.warned:
            self.warned.add((key, why))
            warnings.warn(f'training batch {tuple(images.shape)} (autocast '
                          f'{key[3:]}) runs eagerly: {why}')
