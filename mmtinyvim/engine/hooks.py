"""Runner hooks: resumable randomness, CUDA-graphed backbone training,
validation and testing on a folded copy, mmengine's checkpoint loading
through the safe loader for one run; and the config edits that
``tools/train.py --cuda-graph`` and ``tools/test.py --deploy`` make."""
import random

import numpy as np
import torch
from mmengine.hooks import EMAHook, Hook
from mmengine.model import (BaseTTAModel, MMDistributedDataParallel,
                            is_model_wrapper)
from mmengine.registry import HOOKS, MODEL_WRAPPERS

from ..models.backbones.base import MambaBackboneBase
from ..utils.checkpoint import (restore_mmengine_loaders,
                                use_safe_loader_in_mmengine)
from .deploy import switch_to_deploy
from .graphs import in_memory_format
from .inference import InferencePath
from .training_graphs import TrainingGraphs, check_graph_options


def reseed_global_generators(seed: int, step: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators
    from ``(seed, step)``; different steps get independent streams."""
    derived = int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
    random.seed(derived)
    np.random.seed(derived)
    torch.manual_seed(derived)


class _ReseedingIterator:
    """Wraps a training loop's batch iterator: before fetching batch ``i``
    (0-based, counting every fetch, also the ones a resumed loop makes to
    skip used data) the global generators are re-seeded from ``(seed, i)``."""

    def __init__(self, iterator, seed: int):
        self._iterator = iterator
        self._seed = seed
        self._fetched = 0

    def __iter__(self):
        return self

    def __next__(self):
        reseed_global_generators(self._seed, self._fetched)
        self._fetched += 1
        return next(self._iterator)


@HOOKS.register_module()
class ResumableRandomnessHook(Hook):
    """Make ``--resume`` after a crash continue with the random numbers of an
    uninterrupted run.

    mmengine seeds the global generators once per process and does not store
    their state, so after resuming, data augmentation, proposal sampling and
    dropout draw other numbers than the uninterrupted run would have (and an
    iteration-based loop even spends some while skipping used batches). This
    hook re-seeds python, numpy and torch from ``(runner seed, i)`` right
    before training batch ``i`` is fetched (iteration-based loops) or before
    epoch ``i`` starts (epoch-based loops), so the random state only depends
    on the position in training, never on the history of the process.

    With ``randomness=dict(seed=S, deterministic=True)`` a resumed run then
    reproduces the uninterrupted run's losses exactly. DataLoader workers
    seed themselves when they start: for epoch-based loops this needs
    ``persistent_workers=False`` (or ``num_workers=0``), iteration-based
    loops need nothing.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _ReseedingIterator(
                loop.dataloader_iterator, runner.seed)

    def before_train_epoch(self, runner) -> None:
        iterator = getattr(runner.train_loop, 'dataloader_iterator', None)
        if not isinstance(iterator, _ReseedingIterator):  # EpochBasedTrainLoop
            reseed_global_generators(runner.seed, runner.epoch)


@MODEL_WRAPPERS.register_module()
class GraphSafeDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper, built on a side CUDA stream.

    DDP creates the parameters' gradient-accumulation nodes when it is
    built, and autograd runs each on the stream current at its creation.
    Built on the legacy default stream (as mmengine does), the first
    graphed backward would make that stream wait for the capturing stream,
    which CUDA refuses ("operation would make the legacy stream depend on a
    capturing blocking stream"); built on a side stream, the wait is
    recorded into the graph like any other. This is PyTorch's documented
    recipe for DDP with CUDA graphs. ``tools/train.py --cuda-graph`` selects
    it under a launcher (``add_cuda_graph_hook``).

    ``channels_last``: convert the backbone (the model, if it has none)
    before DDP is built. Converting a model after wrapping it gives its
    parameters new storage behind the reducer's back, and DDP then trains
    on wrong gradients (seen on CPU and GPU); the hook checks this. Only the
    backbone: detection heads feed mmcv ops (RoIAlign) that read NCHW
    memory whatever the tensor's strides say.
    """

    def __init__(self, module, channels_last: bool = True, **kwargs):
        if channels_last:
            graphed_part(module).to(memory_format=torch.channels_last)
        if not torch.cuda.is_available():
            super().__init__(module=module, **kwargs)
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            super().__init__(module=module, **kwargs)
        torch.cuda.current_stream().wait_stream(side)


def graphed_part(model: torch.nn.Module) -> torch.nn.Module:
    """What :class:`CUDAGraphTrainingHook` graphs and converts to
    channels-last: ``model.backbone``, or ``model`` if it has none."""
    backbone = getattr(model, 'backbone', None)
    return backbone if isinstance(backbone, torch.nn.Module) else model


class _CannotGraph(Exception):
    """Why CUDAGraphTrainingHook cannot graph this training."""


@HOOKS.register_module()
class CUDAGraphTrainingHook(Hook):
    """Train the backbone as CUDA graphs: ``tools/train.py --cuda-graph``,
    or ``custom_hooks=[dict(type='CUDAGraphTrainingHook')]``; every shipped
    config carries it with ``required=False``.

    Before training, the backbone is converted to channels-last and its
    forward is replaced by
    :class:`mmtinyvim.engine.TrainingGraphs`: the first training batch of
    each shape records the backbone's forward and backward as CUDA graphs,
    later batches of that shape replay them (gradients as the eager
    network's; docs/benchmark.md); evaluation runs eagerly, or on
    :class:`DeployHook`'s folded copy where the config lists it. Why graphs: a backbone of these families
    launches thousands of small kernels per step, so eager training waits
    on the host, at ImageNet crops and at detection sizes alike.

    Args:
        channels_last (bool): convert the backbone to channels-last (faster
            BatchNorm and depthwise kernels).
        compile (bool): record the ``torch.compile``-d backbone (``--cuda-
            graph compile``): slower start, faster steps for some variants.
        required (bool): False lets training go on eagerly, with the reason
            in the log, where graphs cannot run (no CUDA, no
            ``model.backbone``, mmengine's plain DDP wrapper).
        max_graphs (int): most batch shapes recorded; later new shapes
            train eagerly (a warning names them).
        batch_shapes (list of (h, w)): sizes that smaller batches are padded
            to, so that the varying batch sizes of detection share a few
            graphs (see :class:`TrainingGraphs`); empty: one graph per
            shape. The detection configs list their pipeline's sizes.
        max_padding (float): a batch is padded to a ``batch_shapes`` size
            only when that has at most this many times its pixels.

    Distributed training (``tools/dist_train.sh``, ``tools/slurm_train.sh``)
    works the same way: the graphs hold only the backbone's own forward and
    backward, so the gradients leave the graphed backward through the
    parameters' ordinary accumulation, where DDP's all-reduce hooks sit; the
    reduction itself stays outside the graphs, as in eager training. It
    needs ``model_wrapper_cfg=dict(type='GraphSafeDistributedDataParallel')``,
    which the shipped configs set. ``tools/train.py --no-cuda-graph`` removes
    the hook.
    """

    priority = 'LOW'

    def __init__(self, channels_last: bool = True, compile: bool = False,
                 required: bool = True, max_graphs: int = 4,
                 batch_shapes=(), max_padding: float = 1.5):
        self.channels_last = channels_last
        self.compile = compile
        self.required = required
        # checked here too: on a machine without CUDA the hook skips
        self.graph_options = check_graph_options(max_graphs, batch_shapes,
                                                 max_padding)

    def before_train(self, runner) -> None:
        try:
            self._install(runner)
            logger = getattr(runner, 'logger', None)
            if logger is not None:
                logger.info(
                    'CUDAGraphTrainingHook: the backbone trains through CUDA '
                    'graphs, one per batch shape (--no-cuda-graph: eagerly)')
        except _CannotGraph as reason:
            if self.required:
                raise RuntimeError(str(reason)) from None
            runner.logger.info(f'{reason} Training runs without CUDA graphs.')

    def _install(self, runner) -> None:
        model = runner.model
        ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        if is_model_wrapper(model):  # DDP: the all-reduce stays outside
            if ddp and not isinstance(model,
                                      GraphSafeDistributedDataParallel):
                raise _CannotGraph(
                    'CUDAGraphTrainingHook under distributed training needs '
                    "model_wrapper_cfg=dict(type='GraphSafeDistributedData"
                    f"Parallel') (the model is wrapped in "
                    f'{type(model).__name__}, whose gradient accumulators '
                    'cannot feed a CUDA graph capture); tools/train.py '
                    '--cuda-graph sets it.')
            model = model.module
        backbone = getattr(model, 'backbone', None)
        if not isinstance(backbone, torch.nn.Module):
            raise _CannotGraph(
                'CUDAGraphTrainingHook graphs model.backbone; '
                f'{type(model).__name__} has none.')
        if self.channels_last and ddp and not in_memory_format(
                backbone, torch.channels_last):
            raise RuntimeError(
                'CUDAGraphTrainingHook: the distributed model\'s backbone '
                'must be channels-last before DDP wraps it (converting it '
                'afterwards breaks DDP\'s gradient reduction); use '
                "model_wrapper_cfg=dict(type='GraphSafeDistributedData"
                "Parallel'), as tools/train.py --cuda-graph does")
        devices = {p.device.type for p in backbone.parameters()}
        if devices != {'cuda'}:
            raise _CannotGraph(
                'CUDAGraphTrainingHook records CUDA graphs: the backbone is '
                f'on {", ".join(sorted(devices))}, it needs a CUDA GPU. On '
                'other devices leave out --cuda-graph / the hook.')
        TrainingGraphs(backbone, self.channels_last, self.compile,
                       **self.graph_options).install()


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


def _backbones(model: torch.nn.Module) -> list:
    """The outermost TinyViM / MobileMamba backbones inside ``model``."""
    found = []
    for module in model.modules():
        if isinstance(module, MambaBackboneBase) and not any(
                module in outer.modules() for outer in found):
            found.append(module)
    return found


@HOOKS.register_module()
class DeployHook(Hook):
    """Validate and test on a folded copy of the backbone:
    ``custom_hooks=[dict(type='DeployHook')]`` (the shipped runtimes list
    it), so that our ``tools/`` and mmdet's, mmseg's and mmpretrain's own
    evaluate fast by default.

    At the start of each validation and test epoch every TinyViM /
    MobileMamba backbone gets an :class:`mmtinyvim.engine.InferencePath`
    as its ``forward``: a copy folded with ``switch_to_deploy()`` from the
    weights it has now (after EMAHook, whose priority is higher, swapped
    its averaged weights in), channels-last with CUDA graphs for repeated
    shapes on CUDA; at the end of the epoch the backbone's own forward is
    back. The trained network's weights and ``state_dict`` keys are never
    touched, so the checkpoints saved after validation (``save_best``) are
    those of the network as trained. The copy is kept between epochs and
    refolded in place, so its graphs stay valid.

    Args:
        in_place (bool): ``tools/test.py --deploy``: before testing, fold
            the whole model itself (heads and necks too, where they have
            ``switch_to_deploy()``) instead of serving a copy; validation
            during training still uses the copy (folding cannot be undone).
            Refused with EMAHook, which swaps its averaged weights into the
            unfolded model around testing.

    ``tools/test.py --no-deploy`` leaves the hook out: the network is
    evaluated as trained.
    """

    # after EMAHook ('NORMAL') in before_val_epoch / before_test_epoch
    priority = 'LOW'

    def __init__(self, in_place: bool = False):
        if not isinstance(in_place, bool):
            raise ValueError(f'DeployHook in_place must be True or False, '
                             f'got {in_place!r}')
        self.in_place = in_place
        self.paths = {}  # id(backbone) -> InferencePath
        self.told = False

    def before_test(self, runner) -> None:
        if not self.in_place:
            return
        if any(isinstance(h, EMAHook) for h in getattr(runner, 'hooks', [])):
            raise RuntimeError(
                'DeployHook(in_place=True) folds the model in place, but '
                'EMAHook swaps its averaged weights into the unfolded model '
                'around testing; leave out --deploy: the default '
                'DeployHook evaluates a folded copy')
        model = _unwrapped(runner.model)
        foldable = [m for m in model.modules()
                    if m is not model and hasattr(m, 'switch_to_deploy')]
        if not foldable:
            raise RuntimeError(
                f'DeployHook: {type(model).__name__} has no module with '
                'switch_to_deploy() (TinyViM and MobileMamba backbones have '
                'them); leave out --deploy / the hook')
        switch_to_deploy(model)
        names = sorted({type(m).__name__ for m in foldable})
        runner.logger.info(
            f'DeployHook: folded {", ".join(names)} (switch_to_deploy) for '
            'testing')

    def before_val_epoch(self, runner) -> None:
        self._serve(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._restore()

    def before_test_epoch(self, runner) -> None:
        if not self.in_place:
            self._serve(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._restore()

    def _serve(self, runner) -> None:
        backbones = _backbones(_unwrapped(runner.model))
        if not self.told:
            self.told = True
            if backbones:
                names = ', '.join(type(b).__name__ for b in backbones)
                runner.logger.info(
                    f'DeployHook: validation and testing run a folded copy '
                    f'of {names} (switch_to_deploy; on CUDA channels-last, '
                    'CUDA graphs for repeated shapes); the trained network '
                    'is unchanged')
            else:
                runner.logger.info(
                    'DeployHook: the model has no TinyViM or MobileMamba '
                    'backbone; it is evaluated as built')
        for backbone in backbones:
            path = self.paths.get(id(backbone))
            if path is None or path.backbone is not backbone:
                path = self.paths[id(backbone)] = InferencePath(backbone)
            path.refold().install()

    def _restore(self) -> None:
        for path in self.paths.values():
            path.remove()


@HOOKS.register_module()
class SafeLoadingHook(Hook):
    """mmengine's checkpoint loading (``load_from``, ``resume``, the
    backbones' ``Pretrained`` init) through mmtinyvim's safe loader for this
    run: ``custom_hooks=[dict(type='SafeLoadingHook')]``. Runner
    checkpoints (message hub, numpy state) then load under torch's
    ``weights_only=True`` with the package's allow-list also from mmdet's,
    mmseg's and mmpretrain's own tools. The loaders mmengine had come back
    after the run. Our ``tools/train.py`` and ``tools/test.py`` call
    :func:`mmtinyvim.utils.use_safe_loader_in_mmengine` themselves."""

    # before_run: mmengine loads weights and checkpoints right after it
    priority = 'VERY_HIGH'

    def __init__(self):
        self.previous = None

    def before_run(self, runner) -> None:
        if self.previous is None:
            self.previous = use_safe_loader_in_mmengine()

    def after_run(self, runner) -> None:
        if self.previous is not None:
            restore_mmengine_loaders(self.previous)
            self.previous = None


def add_cuda_graph_hook(cfg, compile: bool = False) -> None:
    """``tools/train.py --cuda-graph``: append :class:`CUDAGraphTrainingHook`
    to ``cfg.custom_hooks`` (replacing one already there), refusing at once
    where it cannot run (the hook checks the built model again before
    training)."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            '--cuda-graph records CUDA graphs and this machine has no CUDA '
            'GPU; train without --cuda-graph')
    if cfg.get('launcher', 'none') != 'none':
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        if wrapper.get('type', 'MMDistributedDataParallel') not in (
                'MMDistributedDataParallel',
                'GraphSafeDistributedDataParallel'):
            raise RuntimeError(
                f"--cuda-graph under a launcher wraps the model in "
                f"GraphSafeDistributedDataParallel; the config asks for "
                f"model_wrapper_cfg type {wrapper['type']!r}")
        cfg.model_wrapper_cfg = dict(
            wrapper, type='GraphSafeDistributedDataParallel')
    own = [h for h in cfg.get('custom_hooks') or []
           if h.get('type') == 'CUDAGraphTrainingHook']
    remove_cuda_graph_hook(cfg)
    # the config's own hook keeps its options (batch_shapes, max_graphs)
    cfg.custom_hooks.append(dict(own[-1] if own else
                                 dict(type='CUDAGraphTrainingHook'),
                                 required=True, compile=compile))


def remove_cuda_graph_hook(cfg) -> None:
    """``tools/train.py --no-cuda-graph``: leave out the
    :class:`CUDAGraphTrainingHook` a config carries (the shipped configs
    do by default)."""
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                        if h.get('type') != 'CUDAGraphTrainingHook']


def add_deploy_hook(cfg) -> None:
    """``tools/test.py --deploy``: the config's :class:`DeployHook` (or a
    new one) with ``in_place=True``."""
    remove_deploy_hook(cfg)
    cfg.custom_hooks.append(dict(type='DeployHook', in_place=True))


def remove_deploy_hook(cfg) -> None:
    """``tools/test.py --no-deploy``: leave out the :class:`DeployHook` a
    config carries (the network is then evaluated as trained)."""
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                        if h.get('type') != 'DeployHook']
