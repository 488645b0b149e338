"""Where the GPU time of one step goes: a kernel profile by category.

    python tools/analysis_tools/profile_step.py tinyvim-s mobilemamba-b1 \\
        --mode train --batch 128 --out work_dirs/profile_train.json
    python tools/analysis_tools/profile_step.py tinyvim-s --mode infer --precision fp32
    python tools/analysis_tools/profile_step.py --factory model.tinyvim:TinyViM_S \\
        --label official-tinyvim-s --img-size 224      # any nn.Module factory
    python tools/analysis_tools/profile_step.py tinyvim-s --device cpu \\
        --batch 2 --img-size 64 --steps 1               # plumbing only

The network is the ImageNet classifier as built (``mmtinyvim.create_model``,
no folding, no graphs, no compile), or whatever ``--factory module:function``
returns (called with ``num_classes=1000``; the module must be importable,
e.g. through ``PYTHONPATH``): the official code can be profiled in the same
run without being part of this repository. ``--fuse`` folds the model
first (its parts' ``switch_to_deploy()``, else their ``fuse()``; inference
only).

One step: ``train`` = forward under the precision's autocast, cross-entropy
on the (first) logits, backward and an AdamW step through a GradScaler (AMP)
in ``train()`` mode; ``infer`` = the forward in ``eval()`` under
``torch.no_grad()``. After ``--warmup`` steps, the wall time of ``--steps``
steps (synchronised) gives img/s; then the same number of steps under
``torch.profiler`` gives each kernel's GPU time and launch count, grouped
into the categories of :data:`CATEGORIES` (the first pattern that matches a
kernel's name wins), per step. ``GPU busy`` = the kernels' summed time
over the step's wall time: far under 1 means the host (launches, Python)
is the bound, or the GPU waits for something. The timed steps also give
the host time per phase (forward, ``backward()``, optimizer: the
GradScaler's inf check waits for the GPU there, final sync) and the number
of Triton JIT compilations they triggered (in-memory cache misses: should
be 0 after the warm-up), to tell a slow host from a stall.
"""
import argparse
import importlib
import json
import platform
import re
import time
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F

# (category, regex on the kernel name); first match wins, so the specific
# names come before the generic element-wise / reduction ones
CATEGORIES = (
    ('batchnorm', r'bn_fw|bn_bw|batch_norm|batchnorm|_bn_'),
    ('layernorm', r'layer_norm|layernorm'),
    ('scan', r'selective_scan|scan'),
    ('haar/laplace (ours)', r'_haar|_laplace|wavelet'),
    ('layout', r'nchwToNhwc|nhwcToNchw|transpose|permute|copy_kernel|'
               r'CatArrayBatched|cat_'),
    ('conv/gemm', r'conv|cudnn|xmma|gemm|cutlass|sm80_|sm90_|wgrad|dgrad|'
                  r'implicit|winograd|fft|depthwise|nvjet|cublas'),
    ('pool/interp', r'pool|upsample|interp'),
    ('softmax/loss', r'softmax|nll|cross_entropy|log_softmax'),
    ('optimizer', r'multi_tensor|adam|foreach|fused_adam'),
    ('reduction', r'reduce'),
    ('element-wise', r'elementwise|vectorized|unrolled|triton_|fill|'
                     r'index|where|clamp'),
)


def categorize(name: str) -> str:
    """The category of a kernel's name (``other`` when no pattern matches)."""
    for category, pattern in CATEGORIES:
        if re.search(pattern, name, re.IGNORECASE):
            return category
    return 'other'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('variants', nargs='*',
                        help='mmtinyvim variants, e.g. tinyvim-s '
                             'mobilemamba-b1 (see mmtinyvim.list_models)')
    parser.add_argument('--factory', action='append', default=[],
                        metavar='MODULE:FUNCTION',
                        help='profile this factory\'s model too')
    parser.add_argument('--label', action='append', default=[],
                        help='a name for each --factory (default: its path)')
    parser.add_argument('--mode', choices=('train', 'infer'), default='train')
    parser.add_argument('--precision', choices=('amp', 'fp32'), default='amp')
    parser.add_argument('--batch', type=int, default=None,
                        help='default: 128 (train), 256 (infer)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='default: each variant\'s ImageNet resolution '
                             '(224 for --factory)')
    parser.add_argument('--fuse', action='store_true',
                        help='fold the model first (inference only)')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--top', type=int, default=15,
                        help='kernels listed by GPU time')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--out', help='write the profiles as JSON here')
    args = parser.parse_args(argv)
    if not args.variants and not args.factory:
        parser.error('give at least one variant or --factory')
    if args.label and len(args.label) != len(args.factory):
        parser.error('give one --label per --factory')
    if args.fuse and args.mode == 'train':
        parser.error('--fuse folds BatchNorms: inference only')
    if args.batch is None:
        args.batch = 128 if args.mode == 'train' else 256
    return args


def build_variant(name: str):
    import mmtinyvim
    model_name = name.replace('-', '_')
    if model_name not in mmtinyvim.list_models():
        raise SystemExit(f'unknown variant {name!r}; valid: '
                         f'{", ".join(mmtinyvim.list_models())}')
    model = mmtinyvim.create_model(model_name)
    return model, model.pretrained_cfg['input_size'][-1]


def build_factory(path: str):
    module, _, function = path.partition(':')
    if not function:
        raise SystemExit(f'--factory {path!r}: expected MODULE:FUNCTION')
    return getattr(importlib.import_module(module), function)(
        num_classes=1000)


def fold(model: nn.Module) -> nn.Module:
    """mmtinyvim models: every part's ``switch_to_deploy()``; other models
    (the official code): every submodule with ``fuse()`` replaced by what it
    returns, as the official speed scripts fold."""
    from mmtinyvim.models.layers import fuse_modules
    parts = [m for m in model.modules() if hasattr(m, 'switch_to_deploy')]
    for part in parts:
        part.switch_to_deploy()
    if parts:
        return model
    if not any(hasattr(m, 'fuse') for m in model.modules()):
        raise SystemExit('--fuse: no part of the model has '
                         'switch_to_deploy() or fuse()')
    return fuse_modules(model)


def first_logits(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def make_step(model, args, resolution, device, phases=None):
    """The step function; with a ``phases`` dict it adds each call's host
    time per phase (ms): ``forward`` (zero_grad + forward + loss, or the
    inference forward), ``backward`` (the ``backward()`` call),
    ``optimizer`` (the GradScaler's step, whose inf check waits for the
    GPU, and update)."""
    x = torch.randn(args.batch, 3, resolution, resolution, device=device)

    def add(name, since):
        if phases is not None:
            phases[name] = phases.get(name, 0.0) + \
                (time.perf_counter() - since) * 1e3
    amp = dict(device_type=device.type, dtype=torch.float16,
               enabled=args.precision == 'amp' and device.type == 'cuda')
    if args.mode == 'infer':
        model.eval()

        def step():
            tic = time.perf_counter()
            with torch.no_grad(), torch.autocast(**amp):
                model(x)
            add('forward', tic)
        return step
    model.train()
    target = torch.randint(0, 1000, (args.batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp['enabled'])

    def step():
        tic = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(**amp):
            loss = F.cross_entropy(first_logits(model(x)).float(), target)
        add('forward', tic)
        tic = time.perf_counter()
        scaler.scale(loss).backward()
        add('backward', tic)
        tic = time.perf_counter()
        scaler.step(optimizer)
        scaler.update()
        add('optimizer', tic)
    return step


class TritonCompiles:
    """Counts Triton JIT compilations (in-memory cache misses) inside the
    ``with`` block; ``count`` None where this Triton has no such hook."""

    def __enter__(self):
        self.count, self._saved = None, None
        try:
            from triton.runtime.jit import JITFunction
        except ImportError:
            return self
        compile_ = getattr(JITFunction, '_do_compile', None)
        if compile_ is None:
            return self
        self.count, self._saved = 0, (JITFunction, compile_)

        def counted(fn, *args, **kwargs):
            self.count += 1
            return compile_(fn, *args, **kwargs)

        JITFunction._do_compile = counted
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            self._saved[0]._do_compile = self._saved[1]


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def kernel_table(prof, device, steps: int) -> dict:
    """Kernel name -> (GPU µs per step, launches per step)."""
    on_gpu = device.type == 'cuda'
    table = {}
    for event in prof.key_averages():
        if on_gpu:
            # record_function ranges (e.g. 'Optimizer.step#AdamW.step') are
            # also listed on the device: they span kernels counted already
            if (event.device_type != torch.autograd.DeviceType.CUDA
                    or getattr(event, 'is_user_annotation', False)
                    or '#' in event.key):
                continue
            total = getattr(event, 'self_device_time_total',
                            getattr(event, 'self_cuda_time_total', 0))
        else:  # CPU: the ops' own time stands in for kernels
            total = event.self_cpu_time_total
        if total <= 0:
            continue
        table[event.key] = (total / steps, event.count / steps)
    return table


def profile(label, model, resolution, args, device) -> dict:
    model = model.to(device)
    if args.fuse:
        model = fold(model.eval())
    phases = {}
    step = make_step(model, args, resolution, device, phases)
    for _ in range(args.warmup):
        step()
    _sync(device)
    phases.clear()
    with TritonCompiles() as compiles:
        tic = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync_tic = time.perf_counter()
        _sync(device)
        end = time.perf_counter()
    wall_ms = (end - tic) * 1e3 / args.steps
    host_ms = {name: ms / args.steps for name, ms in phases.items()}
    host_ms['final sync'] = (end - sync_tic) * 1e3 / args.steps
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        _sync(device)
    kernels = kernel_table(prof, device, args.steps)
    categories = defaultdict(lambda: [0.0, 0.0])
    for name, (us, launches) in kernels.items():
        entry = categories[categorize(name)]
        entry[0] += us
        entry[1] += launches
    gpu_ms = sum(us for us, _ in kernels.values()) / 1e3
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:args.top]
    record = dict(
        label=label, device=device.type, mode=args.mode,
        precision=args.precision,
        batch=args.batch, img_size=resolution, fused=args.fuse,
        wall_ms=wall_ms, img_s=args.batch / wall_ms * 1e3,
        host_ms=host_ms, triton_compiles=compiles.count,
        kernel_ms=gpu_ms,
        launches=sum(n for _, n in kernels.values()),
        busy=gpu_ms / wall_ms,
        categories={k: dict(ms=v[0] / 1e3, launches=v[1])
                    for k, v in sorted(categories.items(),
                                       key=lambda kv: -kv[1][0])},
        top=[dict(name=k, ms=v[0] / 1e3, launches=v[1],
                  category=categorize(k)) for k, v in top])
    del model, step
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return record


def print_record(r):
    # on CPU the profiler's own op times stand in for kernels
    unit = 'kernel' if r['device'] == 'cuda' else 'op'
    print(f'\n## {r["label"]}: {r["mode"]} {r["precision"]}, batch '
          f'{r["batch"]}, {r["img_size"]} px{", fused" if r["fused"] else ""}'
          f'\nwall {r["wall_ms"]:.2f} ms/step ({r["img_s"]:.0f} img/s); '
          f'{unit} time {r["kernel_ms"]:.2f} ms in {r["launches"]:.0f} '
          f'launches; busy {r["busy"]:.2f}')
    print('host ms/step by phase: ' + ', '.join(
        f'{name} {ms:.2f}' for name, ms in r['host_ms'].items()) +
        f'; Triton compiles in the timed steps: {r["triton_compiles"]}\n')
    print('| category | ms/step | share | launches/step |')
    print('|---|---|---|---|')
    for name, c in r['categories'].items():
        print(f'| {name} | {c["ms"]:.2f} | '
              f'{c["ms"] / max(r["kernel_ms"], 1e-9):.1%} | '
              f'{c["launches"]:.0f} |')
    print(f'\ntop {len(r["top"])} kernels:\n')
    print('| kernel | category | ms/step | launches/step |')
    print('|---|---|---|---|')
    for k in r['top']:
        name = k['name'] if len(k['name']) <= 90 else k['name'][:87] + '...'
        print(f'| `{name}` | {k["category"]} | {k["ms"]:.3f} | '
              f'{k["launches"]:.0f} |')


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('no CUDA device: use --device cpu for the plumbing')
    records = []
    for name in args.variants:
        model, resolution = build_variant(name)
        records.append(profile(name, model, args.img_size or resolution,
                               args, device))
        print_record(records[-1])
    labels = args.label or args.factory
    for path, label in zip(args.factory, labels):
        records.append(profile(label, build_factory(path),
                               args.img_size or 224, args, device))
        print_record(records[-1])
    if args.out:
        meta = dict(torch=torch.__version__, python=platform.python_version(),
                    device=(torch.cuda.get_device_name(device)
                            if device.type == 'cuda' else platform.processor()))
        with open(args.out, 'w') as f:
            json.dump(dict(meta=meta, profiles=records), f, indent=1)
    return records


if __name__ == '__main__':
    main()
