"""The GPU fast paths as one call each, for models with fixed input shapes.

    from mmtinyvim.engine import for_inference, for_training

    predict = for_inference(model, example_batch, dtype=torch.float16)
    logits = predict(batch)          # same shape, dtype and device as example

    forward = for_training(model, example_batch, dtype=torch.float16)
    loss = criterion(forward(batch), labels)   # inside your autocast region

``for_inference`` folds the re-parameterisable branches
(``switch_to_deploy()``), converts model and input to channels-last, enables
cuDNN's algorithm search, compiles the network with static shapes and replays
the whole forward as one CUDA graph. ``for_training`` converts to
channels-last and records forward and backward as CUDA graphs
(``torch.cuda.make_graphed_callables``). Each step is a function of its own
(:func:`to_memory_format`, :func:`enable_cudnn_search`,
:func:`compile_static`, :func:`capture_cuda_graph`,
:func:`record_training_graphs`); ``tools/analysis_tools/benchmark.py``
composes its configurations from them, and ``docs/benchmark.md`` has the
numbers.

A CUDA graph replays fixed memory: every call must use the example's shape,
dtype and device (a different one is refused with the shapes named), and
the function returns fresh tensors in the NCHW layout of the network as
built, whatever layout it ran in (mmcv's ops, RoIAlign among them, read
NCHW memory). ``clone_outputs=False`` returns the graph's own output
buffers instead: overwritten by the next call, and channels-last where the
network made them so.
"""
import copy
import operator
import warnings
import weakref
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules import module as torch_module

from .deploy import switch_to_deploy

__all__ = ['capture_cuda_graph', 'compile_static', 'enable_cudnn_search',
           'for_inference', 'for_training', 'TrainingGraphs',
           'InferencePath', 'inference_path_of', 'install_inference_path',
           'plain_inference', 'record_training_graphs', 'run_inference_path',
           'to_memory_format']


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


def plain_inference(model: nn.Module) -> nn.Module:
    """Turn off the default inference path (:class:`InferencePath`) of
    every backbone in ``model``: its inference calls then run the network
    as built. Returns ``model``."""
    for module in model.modules():
        if getattr(module, 'fast_inference', False):
            module.fast_inference = False
    return model


def for_inference(model: nn.Module,
                  example: torch.Tensor,
                  dtype: Optional[torch.dtype] = None,
                  deploy: bool = True,
                  channels_last: bool = True,
                  compile: bool = True,
                  cuda_graph: Optional[bool] = None,
                  clone_outputs: bool = True) -> Callable:
    """``model`` (modified in place: eval mode, folded, channels-last) as a
    fast ``images -> outputs`` function for inputs shaped like ``example``.

    Args:
        dtype: autocast dtype (``torch.float16``/``torch.bfloat16``), or
            None for the model's own precision.
        cuda_graph: None = replay as a CUDA graph when model and example are
            on CUDA.
        clone_outputs: False: a graph's calls return its own output
            buffers (no copy; see the module's docstring).
    """
    _check_example(example)
    if dtype not in (None, torch.float16, torch.bfloat16):
        raise ValueError(f'dtype must be None, torch.float16 or '
                         f'torch.bfloat16, got {dtype}')
    graphed = _resolve_cuda_graph(cuda_graph, model, example)
    model.eval()
    plain_inference(model)  # this function replaces the default path
    if deploy:
        switch_to_deploy(model)
    memory_format = to_memory_format(model, channels_last)
    if example.is_cuda:
        enable_cudnn_search()
    network = compile_static(model) if compile else model
    autocast = dict(device_type=example.device.type, dtype=dtype,
                    enabled=dtype is not None,
                    # a graph must not keep autocast's weight cache alive
                    cache_enabled=not graphed)

    def run(images):
        with torch.no_grad(), torch.autocast(**autocast):
            return network(images.contiguous(memory_format=memory_format))

    if not graphed:
        def predict(images):
            return _as_built(run(images))
        return predict

    static_input = example.detach().clone().contiguous(
        memory_format=memory_format)
    static = {}

    def record():
        static['out'] = run(static_input)

    replay_graph = capture_cuda_graph(record, example.device)

    def replay(images):
        if not _fits(images, static_input):
            raise ValueError(
                f'this function replays a CUDA graph recorded for input '
                f'{_describe(static_input)}; got {_describe(images)}. Build '
                'one per input shape, or pass cuda_graph=False')
        static_input.copy_(images)
        replay_graph()
        if not clone_outputs:
            return static['out']
        return _as_built(static['out'], fresh=True)

    # the graph reads the weights in place, so the (folded) network must
    # live as long as the function that replays it
    replay.network = network
    return replay


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


# ---------------------------------------------------------------------------
# The default inference path of the dense backbones (no switch needed)


def _may_accelerate(images) -> bool:
    """Whether this call may leave the module's own forward: never while
    tracing, scripting, compiling or exporting (they must see the network
    itself), nor inside someone else's CUDA graph capture."""
    if not isinstance(images, torch.Tensor):
        return False
    if (torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export()):
        return False
    return not (images.is_cuda and torch.cuda.is_current_stream_capturing())


_VERSION = operator.attrgetter('_version')


def _fingerprint(tensors: tuple) -> tuple:
    """Changes whenever one of ``tensors`` is written in place (optimizer
    steps, ``load_state_dict``) or given new storage; writes through
    ``.data`` are not versioned by torch (``train()``/``eval()`` catch
    those, see :meth:`InferencePath.__call__`)."""
    return (tuple(map(_VERSION, tensors)),
            tuple(map(torch.Tensor.data_ptr, tensors)))


def _has_hooks(modules) -> bool:
    return bool(torch_module._global_forward_hooks
                or torch_module._global_forward_pre_hooks
                or any(m._forward_hooks or m._forward_pre_hooks
                       for m in modules))


class InferencePath:
    """What runs a dense backbone's inference calls by default (eval mode,
    gradients off; ``fast_inference=False`` on the backbone opts out).

    * A folded copy of the network (``switch_to_deploy()``): the backbone
      itself is never modified, so training after evaluation is unaffected.
      The copy is refolded whenever the backbone's weights or buffers
      change (optimizer step, checkpoint load, ``.to()``) and on each
      ``train()``/``eval()`` call, in place, so recorded graphs stay valid.
      Weights written through ``.data`` (which torch does not version)
      between two inference calls are seen after the next ``eval()``.
    * On CUDA, the copy runs channels-last (its outputs are returned in
      the NCHW layout of the network as built), and an input signature
      (shape, dtype, device, autocast state) seen ``record_after`` times is
      recorded as a CUDA graph and replayed from then on; at most
      ``max_graphs`` are kept per backbone, sharing one memory pool (a
      replay's outputs are cloned at once, so no graph's outputs outlive
      another's replay). Other shapes run the folded copy eagerly, so any
      input size stays correct.
    * Calls the path cannot serve run the backbone's own forward: forward
      hooks on the backbone or its parts (they must see the real modules),
      tracing, scripting, ``torch.compile``, ONNX export, a CUDA graph
      capture already under way, inference mode (for graphs only).

    Why not ``torch.compile``: its compile time is tens of seconds per
    shape, too much for a default; :func:`for_inference` is the switch that
    adds it.
    """

    max_graphs = 16
    record_after = 2
    channels_last = None  # None: on CUDA (a CPU test may set True)

    def __init__(self):
        self.epoch = None
        self.watched = ()
        self.fingerprint = None
        self.network = None
        self.modules = ()
        self.memory_format = torch.contiguous_format
        self.seen = {}
        self.graphs = {}
        self.failed = set()
        self.pool = None

    # ------------------------------------------------------------ folding

    def _fold(self, backbone: nn.Module) -> None:
        fresh = copy.deepcopy(backbone)
        fresh.fast_inference = False  # the copy runs its own forward
        fresh.zero_grad(set_to_none=True)
        for module in fresh.modules():  # hooks belong to the real modules
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
        fresh.switch_to_deploy()
        fresh.eval().requires_grad_(False)
        on_cuda = any(p.is_cuda for p in fresh.parameters())
        channels_last = (on_cuda if self.channels_last is None
                         else self.channels_last)
        memory_format = (torch.channels_last if channels_last else
                         torch.contiguous_format)
        fresh.to(memory_format=memory_format)
        current = self.network
        if current is not None and _same_layout(current, fresh):
            with torch.no_grad():  # in place: recorded graphs stay valid
                for old, new in zip(_tensors(current), _tensors(fresh)):
                    old.copy_(new)
        else:
            self.network, self.memory_format = fresh, memory_format
            self.graphs.clear()
            self.seen.clear()
            self.failed.clear()
        self.modules = tuple(backbone.modules())

    # ------------------------------------------------------------ calling

    def __call__(self, backbone: nn.Module, images):
        """The outputs, or None where the backbone's own forward must run
        (the caller, :func:`run_inference_path`, has checked
        :func:`_may_accelerate`)."""
        # the weights' list is re-read only when the backbone says it may
        # have changed (train()/eval(), .to(), a load, folding): walking the
        # modules on every call cost milliseconds per call
        epoch = (getattr(backbone, 'deploy', None),
                 getattr(backbone, 'state_epoch', None))
        if epoch != self.epoch:
            self.epoch, self.watched = epoch, _tensors(backbone)
        fingerprint = (epoch, _fingerprint(self.watched))
        if fingerprint != self.fingerprint:
            self._fold(backbone)
            self.fingerprint = fingerprint
        if _has_hooks(self.modules):
            return None
        if images.dim() == 4:
            images = images.contiguous(memory_format=self.memory_format)
        if not self._graphable(images):
            return _as_built(self.network(images))
        key = (tuple(images.shape), images.dtype, images.device,
               *_autocast_state())
        replay = self.graphs.get(key)
        if replay is not None:
            return replay(images)
        # errors for bad input come from here
        outputs = _as_built(self.network(images))
        self.seen[key] = self.seen.get(key, 0) + 1
        if (self.seen[key] >= self.record_after and key not in self.failed
                and len(self.graphs) < self.max_graphs):
            try:
                self.graphs[key] = self._capture(images)
            except RuntimeError as error:  # an op that cannot be captured
                self.failed.add(key)
                warnings.warn(f'{type(self.network).__name__}: inputs '
                              f'{key[0]} {key[1]} run without a CUDA graph '
                              f'(capture failed: {error})')
        return outputs

    @staticmethod
    def _graphable(images: torch.Tensor) -> bool:
        return (images.is_cuda and images.dim() == 4 and len(images) > 0
                and not torch.is_inference_mode_enabled())

    def _capture(self, images: torch.Tensor) -> Callable:
        """Record the folded network for inputs like ``images``; returns
        the replay function (input copied in, outputs cloned out)."""
        static_input = images.detach().clone()
        static = {}

        def run():
            static['out'] = self.network(static_input)

        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        replay_graph = capture_cuda_graph(run, images.device, warmup=1,
                                          pool=self.pool)

        def replay(images):
            static_input.copy_(images)
            replay_graph()
            return _as_built(static['out'], fresh=True)

        return replay


def _tensors(module: nn.Module):
    return (*module.parameters(), *module.buffers())


def _same_layout(a: nn.Module, b: nn.Module) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(
        x.shape == y.shape and x.dtype == y.dtype and x.device == y.device
        and x.stride() == y.stride() for x, y in zip(ta, tb))


_PATHS = weakref.WeakKeyDictionary()


def run_inference_path(backbone: nn.Module, images):
    """``MambaBackboneBase.inference_runner``: the backbone's
    :class:`InferencePath` (made on first use), or None to run its own
    forward."""
    if not _may_accelerate(images):
        return None
    path = _PATHS.get(backbone)
    if path is None:
        path = _PATHS[backbone] = InferencePath()
    return path(backbone, images)


def inference_path_of(backbone: nn.Module) -> Optional[InferencePath]:
    """The :class:`InferencePath` a backbone has used so far, if any."""
    return _PATHS.get(backbone)


def install_inference_path() -> None:
    """Make :func:`run_inference_path` the dense backbones' default."""
    from ..models.backbones.base import MambaBackboneBase
    MambaBackboneBase.inference_runner = staticmethod(run_inference_path)
