"""Fast inference, always asked for explicitly.

* :func:`for_inference`: the one call for Python and Inferencer users. It
  folds the re-parameterisable branches (``switch_to_deploy()``), converts
  model and input to channels-last, enables cuDNN's algorithm search,
  compiles the network with static shapes and replays the whole forward as
  one CUDA graph; it returns a module that is called like a function.
* :class:`InferencePath`: what :class:`mmtinyvim.engine.DeployHook` (listed
  in the shipped configs' ``custom_hooks``) serves a backbone's validation
  and test calls with: a folded copy, refolded from the trained weights at
  the start of each epoch, channels-last with CUDA graphs for repeated
  shapes on CUDA. The trained network itself, its weights and its
  ``state_dict`` keys are never changed.

Without either, the network runs as built.

A CUDA graph replays fixed memory: every call of a graphed
:func:`for_inference` must use the example's shape, dtype and device (a
different one is refused with the shapes named), and outputs come back as
fresh tensors in the NCHW layout of the network as built, whatever layout
it ran in (mmcv's ops, RoIAlign among them, read NCHW memory).
``clone_outputs=False`` returns the graph's own output buffers instead:
overwritten by the next call, and channels-last where the network made them
so.
"""
import copy
import warnings
from typing import Callable, Optional

import torch
import torch.nn as nn

from .deploy import switch_to_deploy
from .graphs import (_as_built, _autocast_state, _check_example, _describe,
                     _fits, _resolve_cuda_graph, capture_cuda_graph,
                     compile_static, enable_cudnn_search, to_memory_format)

__all__ = ['InferenceFunction', 'InferencePath', 'for_inference',
           'plain_inference']


class InferenceFunction(nn.Module):
    """What :func:`for_inference` returns: ``images -> outputs``, as a
    module so that it can take the network's place in a bigger model
    (``inferencer.model.backbone = for_inference(...)``). ``network`` is
    the folded (compiled) network whose weights a graph reads in place."""

    def __init__(self, network: nn.Module, run: Callable):
        super().__init__()
        self.network = network
        self._run = run

    def forward(self, images):
        return self._run(images)


def for_inference(model: nn.Module,
                  example: torch.Tensor,
                  dtype: Optional[torch.dtype] = None,
                  deploy: bool = True,
                  channels_last: bool = True,
                  compile: bool = True,
                  cuda_graph: Optional[bool] = None,
                  clone_outputs: bool = True) -> InferenceFunction:
    """``model`` (modified in place: eval mode, folded, channels-last) as a
    fast ``images -> outputs`` function for inputs shaped like ``example``.

    A plain network::

        predict = for_inference(model, example_batch, dtype=torch.float16)
        logits = predict(batch)      # same shape, dtype and device as example

    mmdet's ``DetInferencer`` (mmseg's ``MMSegInferencer`` alike): the
    result takes the backbone's place. Detection resizes each image to its
    own aspect ratio, so the batch shapes vary: fold and convert, without a
    graph or static compilation::

        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model='configs/maskrcnn_tinyvim_s_coco.py',
                                   weights=CHECKPOINT, device='cuda')
        backbone = inferencer.model.backbone
        inferencer.model.backbone = for_inference(
            backbone, torch.zeros(1, 3, 800, 1344, device='cuda'),
            compile=False, cuda_graph=False)
        result = inferencer('demo.jpg')

    (With a pipeline that gives every image one size, leave ``compile``
    and ``cuda_graph`` at their defaults and pass an example of that size.)

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
    plain_inference(model)  # a DeployHook copy would hide the fold below
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
        return InferenceFunction(network, predict)

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

    # the graph reads the weights in place, so the (folded) network lives
    # as long as the function that replays it (its ``network``)
    return InferenceFunction(network, replay)


def plain_inference(model: nn.Module) -> nn.Module:
    """Take every :class:`InferencePath` off the modules of ``model``
    (their calls then run the network as built); returns ``model``."""
    for module in model.modules():
        path = module.__dict__.get('forward')
        if isinstance(path, InferencePath):
            path.remove()
    return model


class InferencePath:
    """A backbone's validation/test calls on a folded copy of it.

    :class:`mmtinyvim.engine.DeployHook` calls :meth:`refold` at the start
    of each validation or test epoch (after EMAHook has swapped its
    averaged weights in), :meth:`install` to make it the backbone's
    ``forward`` for that epoch and :meth:`remove` after it. So the copy is
    read from the weights once per epoch, by the hook that knows when they
    change, and never checked per call.

    * The copy is the backbone deep-copied and folded
      (``switch_to_deploy()``); the backbone itself is not modified, so
      training after validation is unaffected and checkpoints keep the
      trained network's keys and values. Refolding writes the copy's
      tensors in place when their layout is unchanged, so recorded graphs
      stay valid.
    * On CUDA, the copy runs channels-last (its outputs are returned in
      the NCHW layout of the network as built), and an input signature
      (shape, dtype, device, autocast state) seen ``record_after`` times is
      recorded as a CUDA graph and replayed from then on; at most
      ``max_graphs`` are kept per backbone, sharing one memory pool (a
      replay's outputs are cloned at once, so no graph's outputs outlive
      another's replay). Other shapes run the folded copy eagerly, so any
      input size stays correct.
    * Calls in training mode or with gradients on run the forward the
      backbone had before (its own, or ``CUDAGraphTrainingHook``'s).
      Forward hooks on the backbone itself run as usual; hooks on its
      parts see nothing while the path is installed (the copy runs).
    """

    max_graphs = 16
    record_after = 2
    channels_last = None  # None: on CUDA (a CPU test may set True)

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone
        self.network = None
        self.memory_format = torch.contiguous_format
        self.previous = None  # the backbone's own ``forward`` attribute
        self.eager = None
        self.seen = {}
        self.graphs = {}
        self.failed = set()
        self.pool = None

    # ------------------------------------------------------------ folding

    def refold(self) -> 'InferencePath':
        """Fold a copy of the backbone's current weights."""
        backbone = self.backbone
        # an installed forward (ours, TrainingGraphs') stays with the
        # backbone: the copy runs its class's own forward
        own = backbone.__dict__.pop('forward', None)
        try:
            fresh = copy.deepcopy(backbone)
        finally:
            if own is not None:
                backbone.forward = own
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
        return self

    def install(self) -> 'InferencePath':
        """Make this path the backbone's ``forward``."""
        if self.backbone.__dict__.get('forward') is not self:
            self.previous = self.backbone.__dict__.get('forward')
            self.eager = self.backbone.forward
            self.backbone.forward = self
        return self

    def remove(self) -> None:
        """Give the backbone back the ``forward`` it had."""
        if self.backbone.__dict__.get('forward') is self:
            del self.backbone.forward
            if self.previous is not None:
                self.backbone.forward = self.previous
        self.previous = self.eager = None

    # ------------------------------------------------------------ calling

    def __call__(self, images, *args, **kwargs):
        if (self.network is None or args or kwargs
                or not isinstance(images, torch.Tensor)
                or self.backbone.training or torch.is_grad_enabled()):
            return self.eager(images, *args, **kwargs)
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
                and not torch.is_inference_mode_enabled()
                and not torch.cuda.is_current_stream_capturing())

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
