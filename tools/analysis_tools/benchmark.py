"""GPU throughput of every variant, next to timm peers and the official code.

    # everything (9 variants, 3 peers), default configurations, JSON + table
    python tools/analysis_tools/benchmark.py --out work_dirs/bench.json
    # two variants, chosen fast paths, inference only
    python tools/analysis_tools/benchmark.py tinyvim-s mobilemamba-s6 \\
        --configs eager deploy+graph deploy+cl+graph --modes amp fp32
    # the selective-scan kernels alone, at the shapes the variants produce
    python tools/analysis_tools/benchmark.py --scan-kernels
    # a detector config at 800x1333 (batch 2), with and without fast paths
    python tools/analysis_tools/benchmark.py --det-only \\
        --det-config configs/maskrcnn_tinyvim_s_coco.py
    # whole mmengine train/test steps of a detector and its R50 twin (MIM:
    # mmdet's own configs, site-packages/mmdet/.mim/configs)
    python tools/analysis_tools/benchmark.py --steps-only --step-config \\
        configs/maskrcnn_tinyvim_s_coco.py \\
        $MIM/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
    # the official TinyViM-S in the same process, same protocol (its
    # repository root on PYTHONPATH; records with config official and
    # official_fused)
    PYTHONPATH=path/to/TinyViM python tools/analysis_tools/benchmark.py \\
        tinyvim-s --official tinyvim-s=model.tinyvim:TinyViM_S
    # every table of docs/benchmark.md in one command: benchmark_all.py

Protocol (docs/benchmark.md, the EfficientViT/MobileMamba convention):
classifier in ``eval()`` under ``torch.no_grad()``, batch 256 of random
images already on the GPU at the variant's paper resolution, 10
warm-up iterations, then iterations each followed by
``torch.cuda.synchronize()`` until at least 3 s have passed; images/s = batch
/ mean iteration time. ``amp`` = ``torch.autocast('cuda', torch.float16)``,
``fp32`` = no autocast (TF32 at torch's defaults). Training = forward,
cross-entropy, backward and AdamW step under autocast with a GradScaler,
batch 64 and 128 (``--train-batch``; official numbers exist for 128); 5
warm-up steps, then at least 3 s. Peak memory = ``max_memory_allocated``.
Detector/segmentor steps (``--step-config``, :func:`bench_steps`): the
model's whole ``train_step`` (data preprocessor, forward, losses, backward,
the config's optimizer in an fp16 ``AmpOptimWrapper``) and ``test_step``
(AMP and fp32, with post-processing) on a synthetic batch with ground truth
at the config's training batch shape, ``--warmup`` and ``--min-time`` as
above.

A configuration is ``default`` (what the shipped configs evaluate with:
``DeployHook``'s folded copy of each backbone,
:class:`mmtinyvim.engine.InferencePath`), ``eager`` (the network as built)
or fast paths joined by ``+`` (applied to the ``eager`` network):

* ``deploy``: ``switch_to_deploy()`` (inference only): Conv+BN, RepDW,
  7x1/1x7 and BN+Linear folded;
* ``cl``: channels-last model and input;
* ``cudnn``: ``torch.backends.cudnn.benchmark = True``;
* ``compile``: ``torch.compile(model, dynamic=False)`` (inductor, default
  mode, static shapes, dynamo state reset before each run);
* ``graph``: the whole forward (inference) or forward+backward (training,
  ``torch.cuda.make_graphed_callables``) replayed as one CUDA graph;
* ``mode=NAME``: ``torch.compile`` mode (with ``compile``), e.g.
  ``mode=reduce-overhead`` (inductor's own CUDA graphs, instead of ``graph``);
* ``api``: the user-facing one-call fast paths of ``mmtinyvim.engine``
  (inference: ``for_inference`` = deploy+cl+cudnn+compile+graph, each call
  copying the batch into the graph's input and cloning the output;
  training: ``for_training`` = cl+graph); not combinable with the others;
* ``engine`` (training only): the mmpretrain classifier's ``train_step``
  with mmengine's AmpOptimWrapper (data preprocessor, head loss, loss
  scaling: what ``tools/train.py --amp`` runs per iteration, minus data
  loading); ``engine+hook`` adds what ``CUDAGraphTrainingHook``
  (``tools/train.py --cuda-graph``) does, ``engine+hook+compile`` that
  with ``compile=True`` (``--cuda-graph compile``);
* ``scan=NAME``: selective-scan backend (default ``auto``: Triton on CUDA);
* ``haar=conv``: MobileMamba's Haar transforms as the (grouped, transposed)
  convolutions used before the element-wise form became the default (for
  comparison; ``haar=elementwise`` is the default).

The official code is not part of this repository: its numbers, and the
ratios to them, are in docs/benchmark_h200.json / docs/benchmark.md, timed in
the same device run as ours (a ratio is only meaningful on the same GPU kind
in the same run); every report also times the timm peers. ``--official
NAME=MODULE:FUNCTION`` (repeatable) times an official model in this process
under the protocol above: ``FUNCTION(num_classes=1000)`` of the importable
``MODULE`` (put the official repository's root on ``PYTHONPATH``) at the
resolution of our variant ``NAME``, as ``official`` (eager) and
``official_fused`` (its own folding, :func:`fold_official`) in the amp/fp32
modes, and as ``official`` in ``train`` (the same AMP step as ours, on its
first logits when it returns a tuple or list, e.g. with distillation).
"""
import argparse
import copy
import importlib
import json
import logging
import platform
import sys
import time
from functools import partial
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmengine.optim import AmpOptimWrapper
from mmpretrain.structures import DataSample

from mmtinyvim.engine import (ClassifierLogits, CUDAGraphTrainingHook,
                              TrainingGraphs,
                              capture_cuda_graph, compile_static,
                              enable_cudnn_search, for_inference,
                              for_training, InferencePath,
                              record_training_graphs,
                              switch_to_deploy, to_memory_format)
from mmtinyvim.models.backbones.base import MambaBackboneBase
from mmtinyvim.models.layers import fuse_modules
from mmtinyvim.models.zoo import (FAMILIES, VARIANTS, build_classifier,
                                  paper_resolution, parse_variant)
from mmtinyvim.ops.scan import BACKENDS, selective_scan
from mmtinyvim.utils.progress import track

PEERS = ('resnet18', 'efficientvit_m4', 'repvit_m1_1')
# the configurations of --official models: inference times both, training
# the eager one (folding BatchNorms is inference only)
OFFICIAL_CONFIGS = ('official', 'official_fused')
MODES = ('amp', 'fp32', 'train')
FAST_PATHS = ('deploy', 'cl', 'cudnn', 'compile', 'graph', 'api', 'engine',
              'hook')



def parse_config(text: str) -> dict:
    """'deploy+cl+graph' / 'eager' / 'scan=mamba_ssm+graph' -> options."""
    options = dict(paths=set(), scan=None, haar='elementwise',
                   compile_mode=None, default_path=text == 'default')
    if text in ('eager', 'default'):
        return options
    for token in text.split('+'):
        if token.startswith('scan='):
            options['scan'] = token[len('scan='):]
        elif token.startswith('mode='):
            options['compile_mode'] = token[len('mode='):]
        elif token in ('haar=conv', 'haar=elementwise'):
            options['haar'] = token[len('haar='):]
        elif token in FAST_PATHS:
            options['paths'].add(token)
        else:
            raise ValueError(
                f'Unknown configuration token {token!r} in {text!r}; valid: '
                f'default, eager, or {", ".join(FAST_PATHS)}, scan=NAME, '
                'mode=NAME and haar=conv|elementwise joined by "+"')
    if 'api' in options['paths'] and len(options['paths']) > 1:
        raise ValueError(f'{text!r}: "api" already applies its fast paths; '
                         'combine it only with scan=NAME or haar=NAME')
    if 'engine' in options['paths'] and not options['paths'] <= {
            'engine', 'hook', 'compile', 'cudnn'}:
        raise ValueError(f'{text!r}: "engine" combines only with "hook", '
                         '"compile" (with "hook") and "cudnn"')
    if 'hook' in options['paths'] and 'engine' not in options['paths']:
        raise ValueError(f'{text!r}: "hook" needs "engine"')
    if options['paths'] >= {'engine', 'compile'} and (
            'hook' not in options['paths']):
        raise ValueError(f'{text!r}: "engine+compile" needs "hook"')
    if options['compile_mode'] and 'compile' not in options['paths']:
        raise ValueError(f'{text!r}: mode=NAME needs "compile"')
    return options


def build_model(name: str, scan_backend):
    """(module, resolution) of a variant's classifier or a timm peer."""
    if name in PEERS:
        import timm
        return timm.create_model(name, pretrained=False), 224
    kwargs = {} if scan_backend is None else dict(scan_backend=scan_backend)
    classifier, resolution = build_classifier(name, **kwargs)
    return ClassifierLogits(classifier), resolution


def _synchronize():
    # CPU runs (bench_steps' tests) have nothing to wait for, and
    # torch.cuda.synchronize() would fail without a CUDA device
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_loop(step, warmup: int, min_time: float):
    """Mean seconds per call of ``step`` (synchronised after each call), and
    the number of timed calls: at least one, however small ``min_time``."""
    for _ in range(warmup):
        step()
    _synchronize()
    times, start = [], time.perf_counter()
    while True:
        tic = time.perf_counter()
        step()
        _synchronize()
        times.append(time.perf_counter() - tic)
        if time.perf_counter() - start >= min_time:
            return sum(times) / len(times), len(times)


def deploy_error(model: nn.Module, resolution: int) -> float:
    """max|deploy - eager| / std(eager), fp32 with TF32 off, batch 8."""
    reference = copy.deepcopy(model).eval()
    deployed = switch_to_deploy(copy.deepcopy(model)).eval()
    x = torch.randn(8, 3, resolution, resolution, device='cuda')
    flags = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            ref, out = reference(x).double(), deployed(x).double()
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags
    return float((out - ref).abs().max() / ref.std())


def serve_folded_copies(model) -> None:
    """``default``: each backbone's calls on the folded copy that the
    configs' DeployHook serves validation and testing with."""
    for module in model.modules():
        if isinstance(module, MambaBackboneBase):
            InferencePath(module).refold().install()


def parse_official(spec: str) -> tuple:
    """'tinyvim-s=model.tinyvim:TinyViM_S' -> (variant, module, function);
    the variant gives the resolution, so it must be one of ours."""
    name, equals, path = spec.partition('=')
    module, colon, function = path.partition(':')
    if not (equals and colon and name and module and function):
        raise SystemExit(
            f'--official {spec!r}: expected NAME=MODULE:FUNCTION, e.g. '
            'tinyvim-s=model.tinyvim:TinyViM_S (NAME: one of '
            f'{", ".join(VARIANTS)})')
    try:
        parse_variant(name)
    except ValueError:
        raise SystemExit(f'--official {spec!r}: unknown variant {name!r}; '
                         f'valid: {", ".join(VARIANTS)}') from None
    return name, module, function


def load_official(module_name: str, function: str):
    """(factory, its module) of an official model; the official code is not
    part of this repository, so a failed import says where it must come
    from."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(
            f'--official: cannot import {module_name!r} ({error}); put the '
            'official repository\'s root on PYTHONPATH (e.g. PYTHONPATH='
            'path/to/TinyViM for model.tinyvim) and install its '
            'requirements') from None
    factory = getattr(module, function, None)
    if not callable(factory):
        names = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith('_') and
                       getattr(v, '__module__', None) == module.__name__)
        raise SystemExit(f'--official: {module_name} has no factory '
                         f'{function!r}; its callables: {", ".join(names)}')
    return factory, module


def build_official(name: str, module_name: str, function: str):
    """(model, module, resolution): ``function(num_classes=1000)`` of the
    official ``module_name``, at the resolution of our variant ``name``."""
    factory, module = load_official(module_name, function)
    return factory(num_classes=1000), module, paper_resolution(name)


def fold_official(model: nn.Module, module) -> nn.Module:
    """The official model folded as its own speed scripts fold it: the
    module-level ``replace_batchnorm(net)`` when the factory's module has
    one (MobileMamba), else every submodule with ``fuse()`` replaced by what
    it returns (TinyViM; profile_step.py's ``fold``). Call in ``eval()``:
    the folds use the BatchNorms' running statistics."""
    replace_batchnorm = getattr(module, 'replace_batchnorm', None)
    if callable(replace_batchnorm):
        replace_batchnorm(model)  # in place; returns None
        return model
    if not any(hasattr(m, 'fuse') for m in model.modules()):
        raise SystemExit(
            f'official_fused: {module.__name__} has no replace_batchnorm() '
            'and no part of its model has fuse(): nothing to fold')
    return fuse_modules(model)


def first_logits(out):
    """The logits of a model that returns a tuple/list (the official
    distillation heads: (class, distillation) in training)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def official_forward(model: nn.Module):
    """The training forward of an official model: its (first) logits."""

    def forward(images):
        return first_logits(model(images))

    return forward


def run_official(name: str, spec: tuple, mode: str, config: str,
                 batch: int, args) -> dict:
    """``run_one`` for an official model (``--official``): ``official`` =
    the model as its factory builds it, ``official_fused`` = after
    :func:`fold_official` (inference only); the same input, autocast,
    timing and training step as ours."""
    if config not in OFFICIAL_CONFIGS or (mode == 'train' and
                                          config != 'official'):
        raise ValueError(f'{config!r} in mode {mode!r}: official models run '
                         f'as {", ".join(OFFICIAL_CONFIGS)} (inference) and '
                         'official (train)')
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.backends.cudnn.benchmark = False
    tic = time.perf_counter()
    model, module, resolution = build_official(name, *spec[1:])
    model = model.cuda()
    record = dict(model=name, mode=mode, config=config, batch=batch,
                  resolution=resolution, official=f'{spec[1]}:{spec[2]}',
                  params_M=round(sum(p.numel() for p in model.parameters()) /
                                 1e6, 3))
    x = torch.randn(batch, 3, resolution, resolution, device='cuda')
    autocast = dict(device_type='cuda', dtype=torch.float16)
    if mode == 'train':
        model.train()
        step = _amp_train_step(model, official_forward(model), x, autocast)
        warmup = args.train_warmup
    else:
        model.eval()
        if config == 'official_fused':
            # a fuse() may build its module on the CPU
            model = fold_official(model, module).cuda()

        def step():
            with torch.no_grad(), torch.autocast(enabled=mode == 'amp',
                                                 **autocast):
                return model(x)

        warmup = args.warmup
    _time_into(record, step, warmup, tic, args)
    del model, step
    return record


def run_one(name: str, mode: str, config: str, batch: int, args) -> dict:
    options = parse_config(config)
    paths = options['paths']
    if mode == 'train' and 'deploy' in paths:
        raise ValueError(f'{config!r}: deploy mode is inference only')
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.backends.cudnn.benchmark = False  # 'cudnn' switches it on
    tic = time.perf_counter()
    model, resolution = build_model(name, options['scan'])
    model = model.cuda()
    if options['default_path'] and mode != 'train':
        serve_folded_copies(model)
    if options['haar'] == 'conv':
        for module in model.modules():
            if hasattr(module, 'analytic_haar'):
                module.analytic_haar = False
    record = dict(model=name, mode=mode, config=config, batch=batch,
                  resolution=resolution,
                  params_M=round(sum(p.numel() for p in model.parameters()) /
                                 1e6, 3))
    if 'engine' in paths:
        if mode != 'train':
            raise ValueError(f'{config!r}: "engine" times training only')
        return _run_engine(model, record, resolution, 'hook' in paths,
                           'compile' in paths, args)
    if 'api' in paths:
        if mode != 'train':
            record['deploy_err'] = deploy_error(model, resolution)
        return _run_api(model, record, resolution, args)
    if 'deploy' in paths:
        record['deploy_err'] = deploy_error(model, resolution)
        switch_to_deploy(model)
    memory_format = to_memory_format(model, 'cl' in paths)
    if 'cudnn' in paths:
        enable_cudnn_search()
    x = torch.randn(batch, 3, resolution, resolution,
                    device='cuda').to(memory_format=memory_format)
    if 'compile' in paths:
        # a fresh dynamo state per run: otherwise the second resolution in a
        # process recompiles with dynamic shapes, and after 8 models dynamo
        # silently falls back to eager
        torch._dynamo.reset()
        model = compile_static(model, options['compile_mode'])
    graphed = 'graph' in paths
    # a CUDA graph must not keep autocast's weight cache alive across calls
    autocast = dict(device_type='cuda', dtype=torch.float16,
                    cache_enabled=not graphed)

    if mode == 'train':
        model.train()
        forward = (record_training_graphs(model, x, torch.float16)
                   if graphed else model)
        step = _amp_train_step(model, forward, x, autocast)
        warmup = args.train_warmup
    else:
        model.eval()

        def forward():
            with torch.no_grad(), torch.autocast(enabled=mode == 'amp',
                                                 **autocast):
                return model(x)

        step = capture_cuda_graph(forward) if graphed else forward
        warmup = args.warmup
    _time_into(record, step, warmup, tic, args)
    del model, step
    return record


def _amp_train_step(model, forward, x, autocast: dict):
    """One training step on ``x`` with random labels: ``forward`` under
    autocast, cross-entropy, backward and AdamW step with a GradScaler."""
    labels = torch.randint(0, 1000, (x.size(0), ), device=x.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler('cuda')

    def step():
        with torch.autocast(**autocast):
            loss = F.cross_entropy(forward(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def _time_into(record, step, warmup, tic, args):
    """Time ``step`` and add speed, memory and set-up time to ``record``."""
    seconds, iters = time_loop(step, warmup, args.min_time)
    batch = record['batch']
    record.update(
        img_s=round(batch / seconds, 1), ms=round(seconds * 1e3, 3),
        iters=iters, peak_GiB=round(torch.cuda.max_memory_allocated() / 2**30,
                                    3),
        setup_s=round(time.perf_counter() - tic - seconds * iters, 1))
    torch.backends.cudnn.benchmark = False


def _run_api(model, record, resolution, args):
    """``run_one`` through ``mmtinyvim.engine``'s one-call fast paths."""
    batch, mode = record['batch'], record['mode']
    tic = time.perf_counter()
    x = torch.randn(batch, 3, resolution, resolution, device='cuda')
    torch._dynamo.reset()
    if mode == 'train':
        forward = for_training(model, x, dtype=torch.float16)
        step = _amp_train_step(model, forward, x, dict(
            device_type='cuda', dtype=torch.float16, cache_enabled=False))
        warmup = args.train_warmup
    else:
        predict = for_inference(
            model, x, dtype=torch.float16 if mode == 'amp' else None)

        def step():
            return predict(x)

        warmup = args.warmup
    _time_into(record, step, warmup, tic, args)
    return record


def _run_engine(model, record, resolution, hook: bool, compile: bool,
                args):
    """Training as mmengine runs it: the mmpretrain classifier's
    ``train_step`` (data preprocessor, loss, AmpOptimWrapper with AdamW and
    dynamic loss scaling); with ``hook``, what CUDAGraphTrainingHook does
    before training (channels-last, backbone graphed on the first batch),
    with ``compile`` its ``compile=True``."""
    tic = time.perf_counter()
    # BaseModel.cuda also moves the data preprocessor's device
    classifier = model.classifier.cuda().train()
    if hook:
        torch._dynamo.reset()
        CUDAGraphTrainingHook(compile=compile).before_train(
            SimpleNamespace(model=classifier))
    batch = record['batch']
    data = dict(
        inputs=torch.randint(0, 256, (batch, 3, resolution, resolution),
                             dtype=torch.uint8, device='cuda'),
        data_samples=[DataSample().set_gt_label(i % 1000)
                      for i in range(batch)])
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.AdamW(classifier.parameters(), lr=1e-4),
        loss_scale='dynamic')

    def step():
        return classifier.train_step(data, wrapper)

    _time_into(record, step, args.train_warmup, tic, args)
    return record


def scan_shapes(name: str, batch: int):
    """The selective-scan calls (shapes, K) one forward of ``name`` makes."""
    calls = []
    module = FAMILIES[parse_variant(name)[0]].module
    original = module.selective_scan

    def recording(u, delta, A, B, C, *rest, **kwargs):
        calls.append((tuple(u.shape), tuple(A.shape), B.shape[1]))
        return original(u, delta, A, B, C, *rest, **kwargs)

    model, resolution = build_model(name, 'torch')
    module.selective_scan = recording
    try:
        with torch.no_grad():
            model.eval()(torch.randn(1, 3, resolution, resolution))
    finally:
        module.selective_scan = original
    return [((batch, ) + u[1:], a, k) for u, a, k in calls]


def bench_scan_kernels(names, batch: int, backends, reps: int = 30):
    """Forward and forward+backward ms of each backend at each scan shape."""
    rows = []
    seen = set()
    for name in track(names, f'scan kernels of {len(names)} variants'):
        for (b, kd, length), (_, d_state), k in scan_shapes(name, batch):
            if (kd, length, d_state, k) in seen:
                continue
            seen.add((kd, length, d_state, k))
            g = torch.Generator(device='cuda').manual_seed(0)

            def rand(*shape):
                return torch.randn(*shape, device='cuda', generator=g)

            inputs = dict(u=rand(b, kd, length), delta=rand(b, kd, length),
                          A=-torch.rand(kd, d_state, device='cuda',
                                        generator=g),
                          B=rand(b, k, d_state, length),
                          C=rand(b, k, d_state, length), D=rand(kd),
                          delta_bias=rand(kd))
            row = dict(variant=name, batch=b, K=k, D=kd // k, N=d_state,
                       L=length)
            for backend in backends:

                def fn(backend=backend, **kw):
                    return selective_scan(**kw, backend=backend)
                try:
                    row[f'{backend}_fwd_ms'] = _cuda_ms(
                        lambda: fn(**inputs), reps)
                    grads = {key: v.detach().requires_grad_()
                             for key, v in inputs.items()}

                    def fwd_bwd():
                        fn(**grads).sum().backward()

                    row[f'{backend}_fwdbwd_ms'] = _cuda_ms(fwd_bwd, reps)
                except RuntimeError as error:  # backend not installed
                    row[f'{backend}_fwd_ms'] = str(error).split('\n')[0][:80]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _cuda_ms(fn, reps):
    for _ in range(3):
        fn()
    start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return round(start.elapsed_time(end) / reps, 4)


class _FeatureExtractor(nn.Module):
    """A detector's backbone + neck as ``images -> features``."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        return self.detector.extract_feat(images)


DET_CONFIGS = ('default', 'eager', 'deploy+graph', 'api')


def bench_detector(config_path: str, args) -> list:
    """Inference of a detector config on 2 random 800x1333 images (padded to
    800x1344): ``default`` (the backbone on DeployHook's folded copy, as
    the config evaluates); ``eager`` (the detector as built); ``deploy+graph``
    (backbone+neck deployed and
    replayed as one CUDA graph); ``api`` (backbone+neck through
    ``mmtinyvim.engine.for_inference``: deploy+cl+cudnn+compile+graph).
    The heads (proposals, NMS, RoI ops) stay eager in all three."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(config_path)
    height, width = 800, 1344
    rows = []
    for config in track(args.det_configs, f'{config_path}: '
                        f'{len(args.det_configs)} configs'):
        for precision in ('fp32', 'amp'):
            torch._dynamo.reset()
            torch.backends.cudnn.benchmark = False
            model = MODELS.build(cfg.model).cuda().eval()
            if config == 'default':
                serve_folded_copies(model)
            x = torch.randn(2, 3, height, width, device='cuda')
            samples = []
            for _ in range(2):
                sample = DetDataSample()
                sample.set_metainfo(dict(
                    img_shape=(800, 1333), ori_shape=(800, 1333),
                    pad_shape=(height, width),
                    batch_input_shape=(height, width),
                    scale_factor=(1.0, 1.0)))
                samples.append(sample)
            amp = dict(device_type='cuda', dtype=torch.float16,
                       enabled=precision == 'amp',
                       cache_enabled=config in ('eager', 'default'))
            tic = time.time()
            if config in ('eager', 'default'):
                def extract():
                    return model.extract_feat(x)
            elif config == 'api':
                # features come back NCHW (a copy): the RoI heads' mmcv
                # RoIAlign reads NCHW memory
                extract = partial(for_inference(
                    _FeatureExtractor(model), x,
                    dtype=torch.float16 if precision == 'amp' else None), x)
            else:
                switch_to_deploy(model.backbone)
                static = []

                def record():
                    with torch.no_grad(), torch.autocast(**amp):
                        static[:] = [model.extract_feat(x)]

                replay = capture_cuda_graph(record)

                def extract():
                    replay()
                    return static[0]

            def predict():  # TwoStageDetector.predict with given features
                with torch.no_grad(), torch.autocast(**amp):
                    features = extract()
                    proposals = model.rpn_head.predict(
                        features, samples, rescale=False)
                    results = model.roi_head.predict(
                        features, proposals, samples, rescale=True)
                return model.add_pred_to_datasample(samples, results)

            setup_s = time.time() - tic
            seconds, iters = time_loop(predict, args.warmup, args.min_time)
            rows.append(dict(config_file=config_path, config=config,
                             mode=precision, batch=2, size='800x1344',
                             ms=round(seconds * 1e3, 2),
                             img_s=round(2 / seconds, 1), iters=iters,
                             setup_s=round(setup_s, 1)))
            print(json.dumps(rows[-1]), flush=True)
            del model, extract, predict
            torch.cuda.empty_cache()
    return rows


def dense_input_shape(cfg) -> tuple:
    """(batch, height, width) of one training batch of a detector or
    segmentor config as it reaches the backbone: its first fixed resize
    (or crop) padded to the data preprocessor's divisor, its per-GPU batch."""
    batch = cfg.train_dataloader.batch_size
    divisor = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
    size = cfg.model.data_preprocessor.get('size')
    if size is None:
        for step in cfg.train_dataloader.dataset.get('pipeline', []):
            if step['type'] in ('Resize', 'RandomResize') and step.get(
                    'keep_ratio', True):
                size = (max(step['scale']), min(step['scale']))
                break
            if step['type'] in ('Resize', 'RandomCrop'):
                size = step.get('scale', step.get('crop_size'))
                break
    if size is None:
        raise ValueError('no fixed resize, crop or preprocessor size found')
    if cfg.get('default_scope') == 'mmseg':
        height, width = size  # the preprocessor's size is (h, w) in mmseg
    else:  # mmdet's scale is (w, h), padded to the divisor
        width, height = (-(-s // divisor) * divisor for s in size)
    return batch, height, width


def install_training_hook(cfg, model, no_cuda_graph: bool = False) -> str:
    """Apply the config's :class:`CUDAGraphTrainingHook` to ``model`` as the
    runner does before training (the shipped configs carry it) unless
    ``no_cuda_graph`` (``--no-cuda-graph``); returns what training will
    run: ``graphs``, or ``eager`` with the reason."""
    if no_cuda_graph:
        return 'eager (--no-cuda-graph)'
    hooks = [h for h in cfg.get('custom_hooks') or []
             if h.get('type') == 'CUDAGraphTrainingHook']
    if not hooks:
        return 'eager (the config has no CUDAGraphTrainingHook)'
    options = {k: v for k, v in hooks[-1].items() if k != 'type'}
    said = []
    CUDAGraphTrainingHook(**options).before_train(
        SimpleNamespace(model=model, logger=SimpleNamespace(info=said.append)))
    backbone = getattr(model, 'backbone', None)
    if isinstance(getattr(backbone, 'forward', None), TrainingGraphs):
        return 'graphs'
    return f'eager ({" ".join(said)})'


def bench_dense_parts(config_path: str, args) -> list:
    """Backbone+neck of a detector/segmentor config (ours or an R50 one,
    e.g. mmdet's own config file) at its training batch shape: forward +
    backward in training mode (AMP), and the forward in evaluation (AMP and
    fp32), as the config builds it (our backbones: default inference path).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config_path)
    cfg.setdefault('default_scope', 'mmdet')
    init_default_scope(cfg.default_scope)
    batch, height, width = dense_input_shape(cfg)
    batch = args.parts_batch or batch
    rows = []
    for part in ('train', 'eval-amp', 'eval-fp32'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = build_step_model(cfg, 'cuda')  # random weights
        x = torch.randn(batch, 3, height, width, device='cuda')
        if part == 'train':
            model.train()
            training = install_training_hook(cfg, model, args.no_cuda_graph)

            def step():
                with torch.autocast('cuda', torch.float16):
                    features = model.extract_feat(x)
                    loss = sum(f.float().mean() for f in features)
                loss.backward()
                model.zero_grad(set_to_none=True)
        else:
            model.eval()

            def step():
                with torch.no_grad(), torch.autocast(
                        'cuda', torch.float16, enabled=part == 'eval-amp'):
                    return model.extract_feat(x)

        row = dict(config_file=config_path, part=part)
        try:
            seconds, iters = time_loop(step, args.warmup, args.min_time)
        except Exception as error:  # keep going, report the failure
            row['error'] = f'{type(error).__name__}: {str(error)[:300]}'
            rows.append(row)
            print(json.dumps(row), flush=True)
            del model, step
            continue
        rows.append(dict(
            config_file=config_path, backbone=_backbone_name(cfg),
            part=part, batch=batch, size=f'{height}x{width}',
            training=training if part == 'train' else 'eval',
            ms=round(seconds * 1e3, 2), iters=iters,
            peak_GiB=round(torch.cuda.max_memory_allocated() / 2**30, 3)))
        print(json.dumps(rows[-1]), flush=True)
        del model, step
    return rows


def _backbone_name(cfg) -> str:
    """'TinyViMs', 'MobileMambat2', 'ResNet50': type + arch or depth."""
    backbone = cfg.model.backbone
    return backbone.type + str(backbone.get('arch', backbone.get('depth',
                                                                 '')))


STEP_PARTS = ('train-step', 'test-step-amp', 'test-step-fp32')


def _num_classes(cfg) -> int:
    """Classes of a detector's (last) box head or a segmentor's decode
    head."""
    model = cfg.model
    for head in (model.get('roi_head', {}).get('bbox_head'),
                 model.get('bbox_head'), model.get('decode_head')):
        if isinstance(head, (list, tuple)):  # cascades: the last stage
            head = head[-1]
        if head is not None and 'num_classes' in head:
            return head['num_classes']
    raise ValueError('no num_classes in roi_head.bbox_head, bbox_head or '
                     'decode_head')


def synthetic_batch(cfg, batch: int, height: int, width: int,
                    device='cpu', num_objects: int = 5,
                    seed: int = 0) -> dict:
    """A training/test batch of a detector or segmentor config as its
    dataloader would hand it over (``inputs``: uint8 CHW images,
    ``data_samples``), random but reproducible (a fixed generator seed).

    mmdet: ``DetDataSample`` with ``gt_instances`` of ``num_objects`` boxes
    (``HorizontalBoxes``, as ``LoadAnnotations`` makes them) inside the
    image, labels below the config's ``num_classes`` and, when the model has
    a mask head, ``BitmapMasks`` filling each box. mmseg: ``SegDataSample``
    with a ``gt_sem_seg`` of labels below ``num_classes`` and some 255
    (ignored) pixels. The images are ``height x width`` already (callers
    pass :func:`dense_input_shape`'s padded size: the preprocessor then
    pads nothing), so ``img_shape = ori_shape = pad_shape``. Tensors are
    put on ``device`` (the masks stay numpy arrays, as in mmdet)."""
    generator = torch.Generator().manual_seed(seed)
    num_classes = _num_classes(cfg)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, height, width),
                                    dtype=torch.uint8,
                                    generator=generator).to(device))
        meta = dict(img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width), scale_factor=(1.0, 1.0),
                    flip=False, flip_direction=None)
        if cfg.get('default_scope') == 'mmseg':
            samples.append(_seg_sample(meta, num_classes, generator, device))
        else:
            samples.append(_det_sample(
                meta, num_classes, num_objects, generator, device,
                with_mask=bool(cfg.model.get('roi_head', {}).get(
                    'mask_head'))))
    return dict(inputs=inputs, data_samples=samples)


def _det_sample(meta, num_classes, num_objects, generator, device,
                with_mask):
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = meta['img_shape']
    size = torch.tensor([width, height], dtype=torch.float32)
    # box sides between 1/8 and 1/2 of the image's, so that every box has
    # a positive area and the anchors/proposals find some of them
    wh = size * (0.125 + 0.375 * torch.rand(num_objects, 2,
                                            generator=generator))
    x1y1 = (size - wh) * torch.rand(num_objects, 2, generator=generator)
    boxes = torch.cat([x1y1, x1y1 + wh], dim=1)
    instances = InstanceData(
        bboxes=HorizontalBoxes(boxes.to(device)),
        labels=torch.randint(0, num_classes, (num_objects, ),
                             generator=generator).to(device))
    if with_mask:
        masks = np.zeros((num_objects, height, width), dtype=np.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.tolist()):
            mask[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = 1
        instances.masks = BitmapMasks(masks, height, width)
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = instances
    return sample


def _seg_sample(meta, num_classes, generator, device):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = meta['img_shape']
    labels = torch.randint(0, num_classes, (1, height, width),
                           generator=generator)
    # about 5% ignored pixels, as unlabelled ones in the ground truth
    labels[torch.rand(1, height, width, generator=generator) < 0.05] = 255
    sample = SegDataSample(metainfo=meta)
    sample.gt_sem_seg = PixelData(data=labels.to(device))
    return sample


def build_step_model(cfg, device='cuda'):
    """The detector/segmentor of ``cfg`` as a single-process runner builds
    it (modules, ``init_weights``, SyncBN reverted to BN: nothing to
    synchronise with), on ``device``, with random weights: no
    ``pretrained`` and no ``Pretrained`` ``init_cfg`` of the backbone."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, DefaultScope
    cfg = copy.deepcopy(cfg)
    cfg.model.pop('pretrained', None)
    init_cfg = cfg.model.backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = MODELS.build(cfg.model)
    # init_weights logs every parameter's initialisation at INFO level
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        model.init_weights()
    finally:
        logging.disable(previous)
    # BaseModel.to also moves the data preprocessor's device
    return revert_sync_batchnorm(model).to(device)


def build_step_optim_wrapper(cfg, model, device='cuda'):
    """The config's optimizer (``optim_wrapper``: optimizer, paramwise_cfg,
    clip_grad, constructor) wrapped as ``tools/train.py --amp`` does:
    ``AmpOptimWrapper`` with float16 on CUDA; a plain ``OptimWrapper`` on
    CPU, where mmengine's AMP wrapper does not run."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    # mmengine's own wrappers: the step as the model costs it, without the
    # configs' non-finite guard (NonFiniteGuard(Amp)OptimWrapper) and its
    # argument
    wrapper_cfg.pop('max_consecutive_skips', None)
    if torch.device(device).type == 'cuda':
        wrapper_cfg.update(type='AmpOptimWrapper', dtype='float16')
        wrapper_cfg.setdefault('loss_scale', 'dynamic')
    else:
        wrapper_cfg['type'] = 'OptimWrapper'
        for key in ('dtype', 'loss_scale', 'use_fsdp'):
            wrapper_cfg.pop(key, None)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return build_optim_wrapper(model, wrapper_cfg)


def bench_steps(config_path: str, args, device='cuda', height=None,
                width=None, parts=STEP_PARTS) -> list:
    """Whole training and test steps of a detector/segmentor config (ours
    or an R50 one, e.g. mmdet's own config file) on a synthetic batch of
    :func:`synthetic_batch`, as mmengine's loops run them minus data
    loading (the batch is already on ``device``):

    * ``train-step``: ``model.train_step(data, optim_wrapper)`` in training
      mode: data preprocessor, forward, losses, backward and the config's
      optimizer (:func:`build_step_optim_wrapper`: AMP fp16 on CUDA);
    * ``test-step-amp`` / ``test-step-fp32``: ``model.test_step(data)`` in
      evaluation mode under ``torch.no_grad()``, with and without autocast
      (float16 on CUDA, bfloat16 on CPU): preprocessor, forward and
      post-processing (NMS, masks, resizing to ``ori_shape``). On CPU,
      mmcv's NMS takes float32 scores only: a detector's ``test-step-amp``
      fails there as soon as a head's NMS runs (the CPU is for tests).

    The batch is the config's per-GPU training batch (``--steps-batch``) at
    :func:`dense_input_shape` (the first fixed resize/crop padded to the
    preprocessor's divisor: 800x1344 for the 1x COCO recipes, 512x512 for
    ADE20K), for the test steps too, so both see the same images (the test
    pipelines resize differently, e.g. ADE20K's to 512x683). ``height`` and
    ``width`` override the size, and then also the preprocessor's fixed
    ``size`` (mmseg), which would otherwise pad up to it. Random weights
    make the detectors' test-time head work differ from a trained model's:
    mmdet rows report ``dets_per_img``, the detections left after the
    score threshold and NMS. A training row reports the last step's total
    ``loss``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config_path)
    cfg.setdefault('default_scope', 'mmdet')
    init_default_scope(cfg.default_scope)
    batch, default_height, default_width = dense_input_shape(cfg)
    batch = getattr(args, 'steps_batch', None) or batch
    height, width = height or default_height, width or default_width
    if cfg.model.data_preprocessor.get('size') is not None:
        cfg.model.data_preprocessor.size = (height, width)
    cuda = torch.device(device).type == 'cuda'
    autocast_dtype = torch.float16 if cuda else torch.bfloat16
    rows = []
    for part in parts:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        row = dict(config_file=config_path, backbone=_backbone_name(cfg),
                   part=part, batch=batch, size=f'{height}x{width}')
        model = data = step = None
        last = []
        try:
            model = build_step_model(cfg, device)
            data = synthetic_batch(cfg, batch, height, width, device)
            if part == 'train-step':
                model.train()
                optim_wrapper = build_step_optim_wrapper(cfg, model, device)
                row['training'] = install_training_hook(
                    cfg, model, getattr(args, 'no_cuda_graph', False))

                def step():
                    last[:] = [model.train_step(data, optim_wrapper)]
            else:
                model.eval()
                amp = dict(device_type=torch.device(device).type,
                           dtype=autocast_dtype,
                           enabled=part == 'test-step-amp')

                def step():
                    with torch.no_grad(), torch.autocast(**amp):
                        last[:] = [model.test_step(data)]

            seconds, iters = time_loop(step, args.warmup, args.min_time)
            row.update(ms=round(seconds * 1e3, 2), iters=iters,
                       peak_GiB=round(torch.cuda.max_memory_allocated() /
                                      2**30, 3) if cuda else None)
            if part == 'train-step':
                row['loss'] = float(torch.as_tensor(
                    last[0]['loss']).detach())
            elif 'pred_instances' in last[0][0]:
                row['dets_per_img'] = sum(
                    len(s.pred_instances) for s in last[0]) / len(last[0])
        except Exception as error:  # keep going, report the failure
            row['error'] = f'{type(error).__name__}: {str(error)[:300]}'
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model, data, step, last
        if cuda:
            torch.cuda.empty_cache()
    return rows


def official_configs(mode: str) -> tuple:
    """The configurations an ``--official`` model is timed in, per mode."""
    return ('official', ) if mode == 'train' else OFFICIAL_CONFIGS


def print_table(records):
    header = ('model', 'mode', 'config', 'batch', 'img/s', 'peak GiB',
              'deploy err')
    print('\n| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for r in records:
        values = (r['model'], r['mode'], r['config'], r['batch'], r['img_s'],
                  r['peak_GiB'],
                  f"{r['deploy_err']:.1e}" if 'deploy_err' in r else '')
        print('| ' + ' | '.join(str(v) for v in values) + ' |')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('variants', nargs='*', default=list(VARIANTS),
                        help=f'variants (default all): {", ".join(VARIANTS)}')
    parser.add_argument('--peers', nargs='*', default=list(PEERS),
                        help='timm models timed in the same run')
    parser.add_argument('--modes', nargs='+', default=list(MODES),
                        choices=MODES)
    parser.add_argument('--configs', nargs='+',
                        default=['eager', 'deploy+cl+graph'],
                        help='configurations of the variants (inference); '
                        'training uses the same minus "deploy"')
    parser.add_argument('--peer-configs', nargs='+', default=['eager'])
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--train-batch', type=int, nargs='+',
                        default=[64, 128],
                        help='training batch sizes (official: 128)')
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--train-warmup', type=int, default=5)
    parser.add_argument('--min-time', type=float, default=3.0)
    parser.add_argument('--scan-kernels', action='store_true',
                        help='time the selective-scan backends instead')
    parser.add_argument('--scan-backends', nargs='+',
                        default=[b for b in BACKENDS if b not in
                                 ('auto', 'reference')],
                        choices=BACKENDS)
    parser.add_argument('--det-config', nargs='*', default=[],
                        help='also time these mmdet configs at 800x1333')
    parser.add_argument('--det-only', action='store_true',
                        help='time only the --det-config detectors')
    parser.add_argument('--parts-only', action='store_true',
                        help='time only the --det-config / --parts-config '
                        '/ --step-config models')
    parser.add_argument('--steps-only', action='store_true',
                        help='the same as --parts-only: skip the '
                        'classifiers')
    parser.add_argument('--det-configs', nargs='+', choices=DET_CONFIGS,
                        default=['eager', 'deploy+graph'],
                        help='detector configurations (see bench_detector)')
    parser.add_argument('--parts-config', nargs='*', default=[],
                        help='detector/segmentor configs whose backbone+neck '
                        'is timed at the training batch shape (train '
                        'forward+backward, eval forward); give R50 configs '
                        'too, e.g. mmdet\'s own config files')
    parser.add_argument('--parts-batch', type=int,
                        help='batch for --parts-config (default: each '
                        'config\'s own per-GPU training batch)')
    parser.add_argument('--step-config', nargs='*', default=[],
                        help='detector/segmentor configs whose whole '
                        'train_step (AMP, the config\'s optimizer) and '
                        'test_step (AMP and fp32) are timed on a synthetic '
                        'batch at the training batch shape (see '
                        'bench_steps); give R50 configs too, e.g. mmdet\'s '
                        'or mmseg\'s own config files')
    parser.add_argument('--steps-batch', type=int,
                        help='batch for --step-config (default: each '
                        'config\'s own per-GPU training batch)')
    parser.add_argument('--no-cuda-graph', action='store_true',
                        help='--parts-config / --step-config: train eagerly '
                        'instead of through the config\'s '
                        'CUDAGraphTrainingHook (as tools/train.py '
                        '--no-cuda-graph)')
    parser.add_argument('--official', action='append', default=[],
                        metavar='NAME=MODULE:FUNCTION',
                        help='also time this official model (repeatable; '
                        'NAME: our variant whose resolution it runs at, '
                        'e.g. tinyvim-s=model.tinyvim:TinyViM_S with the '
                        'official repository\'s root on PYTHONPATH) as '
                        'official and official_fused (its own folding)')
    parser.add_argument('--out', help='write all records to this JSON file')
    args = parser.parse_args(argv)
    args.official_specs = {}
    for spec in args.official:
        name = parse_official(spec)[0]
        if name in args.official_specs:
            parser.error(f'--official {name}=... given twice')
        args.official_specs[name] = parse_official(spec)
    for flag in ('parts_batch', 'steps_batch'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f'--{flag.replace("_", "-")} must be >= 1, got '
                         f'{value}')
    for name in args.variants:
        parse_variant(name)
    for config in args.configs + args.peer_configs:
        parse_config(config)
    return args


def classifier_jobs(args) -> list:
    """(model, mode, config, batch) of every classifier measurement, in
    order: the peers, our variants, then the ``--official`` models.
    Training drops ``deploy`` from a configuration (the training step has
    none; configurations equal without it are timed once) and runs at every
    ``--train-batch``, the official models' training too; inference runs at
    ``--batch``."""
    wanted = []
    for name in args.peers:
        wanted += [(name, mode, config) for mode in args.modes
                   for config in args.peer_configs]
    for name in args.variants:
        wanted += [(name, mode, config) for mode in args.modes
                   for config in args.configs]
    for name in args.official_specs:
        wanted += [(name, mode, config) for mode in args.modes
                   for config in official_configs(mode)]
    jobs = []
    for name, mode, config in wanted:
        if mode == 'train':
            if config not in OFFICIAL_CONFIGS:
                config = '+'.join(t for t in config.split('+')
                                  if t != 'deploy') or 'eager'
            batches = args.train_batch
        else:
            batches = [args.batch]
        for batch in batches:
            if (name, mode, config, batch) not in jobs:
                jobs.append((name, mode, config, batch))
    return jobs


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit('benchmark.py measures GPU throughput and needs CUDA')
    for name, module, function in args.official_specs.values():
        load_official(module, function)  # fail now, not after minutes
    import triton
    env = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__,
               triton=triton.__version__, python=platform.python_version(),
               cudnn=torch.backends.cudnn.version())
    print(json.dumps(env), flush=True)
    results = dict(env=env, protocol=dict(
        batch=args.batch, train_batch=args.train_batch, warmup=args.warmup,
        train_warmup=args.train_warmup, min_time_s=args.min_time))
    if args.scan_kernels:
        results['scan_kernels'] = bench_scan_kernels(
            args.variants, args.batch, args.scan_backends)
    elif not (args.det_only or args.parts_only or args.steps_only):
        records = []
        jobs = classifier_jobs(args)
        for name, mode, config, batch in track(
                jobs, f'{len(jobs)} (model, mode, config, batch) jobs'):
            try:
                if config in OFFICIAL_CONFIGS:
                    record = run_official(name, args.official_specs[name],
                                          mode, config, batch, args)
                else:
                    record = run_one(name, mode, config, batch, args)
            except Exception as error:  # keep going, report the failure
                record = dict(model=name, mode=mode, config=config,
                              batch=batch, error=f'{type(error).__name__}'
                              f': {str(error)[:300]}')
                torch.cuda.empty_cache()
            print(json.dumps(record), flush=True)
            records.append(record)
            results['records'] = records
            write_json(results, args.out)
        print_table([r for r in records if 'error' not in r])
    if args.det_config:
        results['detector'] = [row for path in args.det_config
                               for row in bench_detector(path, args)]
        write_json(results, args.out)
    if args.parts_config:
        results['dense_parts'] = [row for path in args.parts_config
                                  for row in bench_dense_parts(path, args)]
        write_json(results, args.out)
    if args.step_config:
        results['steps'] = []
        for path in args.step_config:
            results['steps'] += bench_steps(path, args)
            write_json(results, args.out)
    write_json(results, args.out)


def write_json(results: dict, path):
    """Rewritten after every measurement, so a cut-short run keeps its
    numbers."""
    if path:
        with open(path, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
