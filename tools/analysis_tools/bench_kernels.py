"""Speed of the fused kernels (Laplace tail, Haar wavelet, BatchNorm) against
the torch reference paths, in the same process, for every variant.

    python tools/analysis_tools/bench_kernels.py --out work_dirs/kernels.json
    python tools/analysis_tools/bench_kernels.py --quick
    python tools/analysis_tools/bench_kernels.py --ops batchnorm --skip-nets
    python tools/analysis_tools/bench_kernels.py --device cpu --quick \\
        --img-size 64 --infer-batch 2 --train-batch 2     # plumbing only

(a) The backbones as built (``TinyViM`` S/B/L, ``MobileMamba`` T2..B4 at
their ImageNet resolution, ``arch_zoo[...]['img_size']``, else 224; no
folding, no graphs, no compile): ``eval()`` inference under AMP (float16
autocast) and in float32 at ``--infer-batch``, and a training step
(forward + backward, train mode, AMP) at ``--train-batch``; each with the
kernels' backends ``reference`` (``MMTINYVIM_LAPLACE_BACKEND``,
``MMTINYVIM_WAVELET_BACKEND`` and ``MMTINYVIM_BATCHNORM_BACKEND``) and
``auto`` (the fused kernels on CUDA),
alternating call by call. timm's resnet18 (when timm imports) is timed the
same way as a same-run yardstick. Scans use their default backend.

(b) The ops alone at every stage shape those variants produce: the Laplace
tail (``laplace_upsample_residual``) and the Haar analysis / synthesis (with
WTE-Mamba's scales, scan-branch add and casts) in float16, forward at the
inference batch and forward + backward at the training batch.

(c) BatchNorm2d in training mode at every distinct BatchNorm2d input shape
of ``--bn-variants`` (default TinyViM-S and MobileMamba-B1; found by forward
hooks on the built backbones) at the training batch, float16 inputs and
float32 weights and statistics (as under AMP): forward + backward of torch's
cuDNN kernels (``F.batch_norm``), torch's native kernels
(``torch.batch_norm(..., cudnn_enabled=False)``) and the Triton op
(``mmtinyvim.ops.batchnorm``), with the bandwidth each reaches on the
minimal traffic (x read and y written forward; dy and x read and dx written
backward). ``--bn-graph`` times each as a CUDA-graph replay instead: the
kernels' GPU time without the host's per-call cost (what a captured
training step, ``CUDAGraphTrainingHook``, pays).

Times: ``--warmup`` untimed calls, then the median of ``--iters`` calls,
each between two CUDA events (wall clock on CPU). Out-of-memory cases are
reported as such. On CPU ``auto`` is the reference (the plumbing is
checked, not the kernels).
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch

from mmtinyvim.models.backbones.mobilemamba import (MobileMamba,
                                                    mrffi_channel_split)
from mmtinyvim.models.backbones.tinyvim import (LOW_FREQUENCY_SHARES,
                                                POOL_FACTORS, STAGE_STRIDES,
                                                TinyViM)
from mmtinyvim.models.wavelet import haar_analysis, haar_synthesis
from mmtinyvim.ops import batchnorm, laplace, wavelet

BACKENDS = ('reference', 'auto')
ENV_VARS = (laplace.ENV_VAR, wavelet.ENV_VAR, batchnorm.ENV_VAR)
FAMILIES = {'tinyvim': TinyViM, 'mobilemamba': MobileMamba}
OPS = ('laplace', 'wavelet', 'batchnorm')
# the BatchNorm implementations of section (c)
BN_IMPLS = ('cudnn', 'native', 'triton')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    names = [f'{f}-{a}' for f, cls in FAMILIES.items()
             for a in cls.arch_zoo]
    # checked below: argparse refuses an empty nargs='*' list with choices
    parser.add_argument('variants', nargs='*',
                        help=f'of {", ".join(names)} (default: all)')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--quick', action='store_true',
                        help='fewer calls per case (about half the time)')
    parser.add_argument('--infer-batch', type=int, default=256)
    parser.add_argument('--train-batch', type=int, default=128)
    parser.add_argument('--img-size', type=int,
                        help='one resolution for every variant (default: '
                        "each variant's ImageNet size)")
    parser.add_argument('--warmup', type=int)
    parser.add_argument('--iters', type=int)
    parser.add_argument('--ops', nargs='+', choices=OPS, default=list(OPS),
                        help='the op sections to time (default: all)')
    parser.add_argument('--bn-variants', nargs='+',
                        default=['tinyvim-s', 'mobilemamba-b1'],
                        help='whose BatchNorm2d shapes section (c) times '
                        '(default: tinyvim-s mobilemamba-b1)')
    parser.add_argument('--bn-graph', action='store_true',
                        help='time the BatchNorm implementations as CUDA '
                             'graph replays (their GPU time, without the '
                             'host cost of each call)')
    parser.add_argument('--skip-ops', action='store_true',
                        help='time no op (the networks only)')
    parser.add_argument('--skip-nets', action='store_true')
    parser.add_argument('--no-resnet', action='store_true')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    unknown = sorted(set(args.variants) - set(names))
    if unknown:
        parser.error(f'unknown variants {", ".join(unknown)}; valid: '
                     f'{", ".join(names)}')
    args.variants = args.variants or names
    unknown = sorted(set(args.bn_variants) - set(names))
    if unknown:
        parser.error(f'unknown --bn-variants {", ".join(unknown)}; valid: '
                     f'{", ".join(names)}')
    # full: about 3 minutes on one H100 (compilations included), quick:
    # about half
    if args.warmup is None:
        args.warmup = 2 if args.quick else 5
    if args.iters is None:
        args.iters = 7 if args.quick else 21
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    args.device = torch.device(args.device)
    if args.device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here (use --device cpu '
                     'for a plumbing check)')
    return args


def set_backend(name: str):
    for var in ENV_VARS:
        os.environ[var] = name


class Timer:
    """Seconds of one call of a step: CUDA events on CUDA, else the wall
    clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == 'cuda'

    def __call__(self, step) -> float:
        if not self.cuda:
            start = time.perf_counter()
            step()
            return time.perf_counter() - start
        begin, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        begin.record()
        step()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3


def compare(steps: dict, args, timer, switch=set_backend) -> dict:
    """Median seconds per call of each (backend -> step), the backends
    alternating call by call after the warm-up (``switch(backend)`` before
    each); 'oom' when it ran out of memory."""
    samples = {name: [] for name in steps}
    try:
        for name, step in steps.items():
            switch(name)
            for _ in range(args.warmup):
                step()
        for _ in range(args.iters):
            for name, step in steps.items():
                switch(name)
                samples[name].append(timer(step))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {name: 'oom' for name in steps}
    return {name: statistics.median(s) for name, s in samples.items()}


def resolution(family: str, arch: str, args) -> int:
    return args.img_size or FAMILIES[family].arch_zoo[arch].get(
        'img_size', 224)


# ----------------------------------------------------------------- nets --

def bench_net(label, model, size, args, timer, backends=BACKENDS):
    rows = []
    device = args.device
    amp = device.type == 'cuda'  # CPU autocast to float16 is not the case
    images = torch.randn(args.infer_batch, 3, size, size, device=device)
    train_images = torch.randn(args.train_batch, 3, size, size,
                               device=device)

    def outputs(out):
        return out if isinstance(out, (tuple, list)) else (out, )

    def infer(enabled):
        def run():
            with torch.no_grad(), torch.autocast(device.type, torch.float16,
                                                 enabled=enabled):
                model(images)
        return run

    def train():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.float16, enabled=amp):
            outs = outputs(model(train_images))
        sum(o.float().mean() for o in outs).backward()

    cases = (('infer', 'amp' if amp else 'fp32 (no AMP on CPU)', infer(amp),
              args.infer_batch),
             ('infer', 'fp32', infer(False), args.infer_batch),
             ('train', 'amp' if amp else 'fp32 (no AMP on CPU)', train,
              args.train_batch))
    for mode, precision, step, batch in cases:
        model.train(mode == 'train')
        times = compare({b: step for b in backends}, args, timer)
        row = dict(net=label, mode=mode, precision=precision, batch=batch,
                   img_size=size)
        for b in backends:
            row[f'{b}_ms'] = times[b] if times[b] == 'oom' else \
                times[b] * 1e3
            row[f'{b}_img_s'] = times[b] if times[b] == 'oom' else \
                batch / times[b]
        if 'auto' in backends and 'oom' not in times.values():
            row['speedup'] = times['reference'] / times['auto']
        rows.append(row)
        print(format_net(row), flush=True)
    model.zero_grad(set_to_none=True)
    return rows


def format_net(r):
    def ms(key):
        v = r.get(key)
        return f'{v:9.2f}' if isinstance(v, float) else f'{str(v):>9s}'
    speed = f'x{r["speedup"]:.3f}' if 'speedup' in r else ''
    return (f'net {r["net"]:22s} {r["mode"]:5s} {r["precision"]:5s} '
            f'b{r["batch"]:<4d} {r["img_size"]}px: reference '
            f'{ms("reference_ms")} ms, auto {ms("auto_ms")} ms {speed}')


def bench_nets(args, timer):
    rows = []
    for name in args.variants:
        family, arch = name.split('-')
        size = resolution(family, arch, args)
        model = FAMILIES[family](arch).to(args.device)
        rows += bench_net(name, model, size, args, timer)
        del model
        if args.device.type == 'cuda':
            torch.cuda.empty_cache()
    if not args.no_resnet:
        try:
            import timm
        except ImportError:
            print('timm does not import: no resnet18 yardstick')
        else:
            model = timm.create_model('resnet18').to(args.device)
            rows += bench_net('timm-resnet18', model, args.img_size or 224,
                              args, timer, backends=('reference', ))
            del model
    return rows


# ------------------------------------------------------------------ ops --

def laplace_shapes(args):
    """{(channels, H, W, p)} of the TinyViM mixers with p > 1."""
    shapes = set()
    for name in args.variants:
        family, arch = name.split('-')
        if family != 'tinyvim':
            continue
        size = resolution(family, arch, args)
        for stage, width in enumerate(TinyViM.arch_zoo[arch]['widths']):
            p = POOL_FACTORS[stage]
            side = size // STAGE_STRIDES[stage]
            if p > 1 and side % p == 0:
                shapes.add((int(width * LOW_FREQUENCY_SHARES[stage]), side,
                            side, p))
    return sorted(shapes)


def wavelet_shapes(args):
    """{(channels, H, W)} of the MobileMamba WTE-Mamba stages (the stem is
    stride 16, then stride 2 per stage, each giving ceil(n / 2))."""
    shapes = set()
    for name in args.variants:
        family, arch = name.split('-')
        if family != 'mobilemamba':
            continue
        cfg = MobileMamba.arch_zoo[arch]
        side = resolution(family, arch, args)
        for _ in range(4):
            side = (side + 1) // 2
        for stage, dim in enumerate(cfg['embed_dims']):
            if stage:
                side = (side + 1) // 2
            channels = mrffi_channel_split(dim, cfg['global_ratios'][stage],
                                           cfg['local_ratios'][stage])[0]
            if channels:
                shapes.add((channels, side, side))
    return sorted(shapes)


def _op_rows(op, shape, make, args, timer):
    """Forward (inference batch, no grad) and forward+backward (training
    batch) of ``make(batch, grad) -> (fn(backend), inputs)``."""
    rows = []
    for mode, batch in (('fwd', args.infer_batch),
                        ('fwd+bwd', args.train_batch)):
        grad = mode != 'fwd'
        try:
            fn, inputs = make(batch, grad)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        out = fn('reference')
        g = torch.randn_like(out)
        del out

        def step(name):
            def run():
                if grad:
                    torch.autograd.grad(fn(name), inputs, g)
                else:
                    with torch.no_grad():
                        fn(name)
            return run

        times = compare({b: step(b) for b in BACKENDS}, args, timer)
        row = dict(op=op, mode=mode, shape=[batch, *shape], dtype='float16')
        for b in BACKENDS:
            row[f'{b}_us'] = times[b] if times[b] == 'oom' else \
                times[b] * 1e6
        if 'oom' not in times.values():
            row['speedup'] = times['reference'] / times['auto']
        rows.append(row)
        print(format_op(row), flush=True)
    return rows


def format_op(r):
    def us(key):
        v = r[key]
        return f'{v:9.1f}' if isinstance(v, float) else f'{str(v):>9s}'
    speed = f'x{r["speedup"]:.2f}' if 'speedup' in r else ''
    return (f'op  {r["op"]:18s} {r["mode"]:7s} {str(r["shape"]):24s}: '
            f'reference {us("reference_us")} us, auto {us("auto_us")} us '
            f'{speed}')


def bench_ops(args, timer):
    rows = []
    device = args.device
    dtype = torch.float16 if device.type == 'cuda' else torch.float32

    def leaf(*shape):
        return torch.randn(*shape, device=device, dtype=dtype)

    for channels, height, width, p in (laplace_shapes(args)
                                       if 'laplace' in args.ops else ()):
        def make(batch, grad):
            # as the mixer has them: low a channel-split view, y the
            # permuted scan output, pooled its input
            x = leaf(batch, 2 * channels, height, width)
            low = x[:, :channels]
            y = leaf(batch, height // p, width // p, channels).permute(
                0, 3, 1, 2)
            pooled = torch.nn.functional.avg_pool2d(low, p)
            inputs = [t.detach().requires_grad_(grad)
                      for t in (y, low, pooled)]

            def fn(name):
                return laplace.laplace_upsample_residual(
                    *inputs[:2], p, pooled=inputs[2], backend=name)
            return fn, inputs if grad else []
        rows += _op_rows(f'laplace p={p}', (channels, height, width), make,
                         args, timer)

    for channels, height, width in (wavelet_shapes(args)
                                    if 'wavelet' in args.ops else ()):
        h, w = (height + 1) // 2, (width + 1) // 2

        def make_analysis(batch, grad):
            x = leaf(batch, channels, height, width).requires_grad_(grad)

            def fn(name):
                return haar_analysis(x, dtype=dtype, backend=name)
            return fn, [x] if grad else []

        def make_synthesis(batch, grad):
            bands = leaf(batch, 4 * channels, h, w).unflatten(
                1, (channels, 4))
            residual = leaf(batch, channels, height, width)
            scales = [torch.rand(1, n, 1, 1, device=device)
                      for n in (4 * channels, channels)]
            inputs = [t.requires_grad_(grad)
                      for t in (bands, residual, *scales)]

            def fn(name):
                return haar_synthesis(
                    inputs[0], None, (height, width), band_scale=inputs[2],
                    residual=inputs[1], residual_scale=inputs[3],
                    dtype=dtype, backend=name)
            return fn, inputs if grad else []
        rows += _op_rows('haar_analysis', (channels, height, width),
                         make_analysis, args, timer)
        rows += _op_rows('haar_synthesis+add', (channels, height, width),
                         make_synthesis, args, timer)
    return rows


# ------------------------------------------------------------ batchnorm --

def batchnorm_shapes(args):
    """{(channels, H, W): [variants]} of the 4-D inputs of every BatchNorm
    of the ``--bn-variants`` backbones at their resolution (forward hooks,
    one eval-mode image on CPU)."""
    shapes = {}
    for name in args.bn_variants:
        family, arch = name.split('-')
        size = resolution(family, arch, args)
        model = FAMILIES[family](arch).eval()
        hooks = [m.register_forward_hook(
            lambda m, inputs, out: shapes.setdefault(
                tuple(inputs[0].shape[1:]), set()).add(name))
            for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        with torch.no_grad():
            model(torch.randn(1, 3, size, size))
        for hook in hooks:
            hook.remove()
    return {k: sorted(v) for k, v in sorted(shapes.items())
            if len(k) == 3}


def bench_batchnorm(args, timer):
    """Forward + backward of each BN_IMPLS entry at the training batch."""
    rows = []
    device = args.device
    cuda = device.type == 'cuda'
    dtype = torch.float16 if cuda else torch.float32
    impls = BN_IMPLS if batchnorm.triton_available(device) else \
        BN_IMPLS[:2]
    if len(impls) < len(BN_IMPLS):
        print(f'the Triton BatchNorm cannot run on {device.type} tensors: '
              'not timed')

    for (channels, height, width), nets in batchnorm_shapes(args).items():
        shape = (args.train_batch, channels, height, width)
        try:
            x = torch.randn(shape, device=device, dtype=dtype)
            g = torch.randn_like(x)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        x.requires_grad_()
        weight = torch.rand(channels, device=device).add_(0.5)
        bias = torch.randn(channels, device=device)
        weight.requires_grad_()
        bias.requires_grad_()
        stats = (torch.zeros(channels, device=device),
                 torch.ones(channels, device=device))

        def fn(impl):
            if impl == 'cudnn':
                return torch.nn.functional.batch_norm(
                    x, *stats, weight, bias, True, 0.1, 1e-5)
            if impl == 'native':
                return torch.batch_norm(x, weight, bias, *stats, True, 0.1,
                                        1e-5, False)
            return batchnorm.batch_norm_train(x, weight, bias, *stats, 0.1,
                                              1e-5, backend='triton')

        def step(impl):
            def run():
                torch.autograd.grad(fn(impl), (x, weight, bias), g)
            return graph_replay(run) if args.bn_graph and cuda else run

        try:
            steps = {b: step(b) for b in impls}
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        times = compare(steps, args, timer, switch=lambda name: None)
        # the least traffic: x read and y written forward, dy and x read
        # and dx written backward
        traffic = 5 * x.numel() * x.element_size()
        row = dict(op='batchnorm', mode='fwd+bwd', shape=list(shape),
                   timing='graph' if args.bn_graph and cuda else 'per call',
                   dtype=str(dtype).replace('torch.', ''), nets=nets)
        for b in impls:
            ok = times[b] != 'oom'
            row[f'{b}_us'] = times[b] * 1e6 if ok else 'oom'
            row[f'{b}_gb_s'] = traffic / times[b] / 1e9 if ok else 'oom'
        if 'oom' not in times.values() and 'triton' in impls:
            row['speedup_vs_cudnn'] = times['cudnn'] / times['triton']
            row['speedup_vs_native'] = times['native'] / times['triton']
        rows.append(row)
        print(format_bn(row), flush=True)
        del x, g
    return rows


def graph_replay(run):
    """``run`` captured in a CUDA graph (after warm-up calls on a side
    stream, as ``torch.cuda.make_graphed_callables`` does): the replay costs
    one launch, so its time is the GPU time of ``run``'s kernels."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            run()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    return graph.replay


def format_bn(r):
    def us(key):
        v = r.get(key, 'n/a')
        return f'{v:9.1f}' if isinstance(v, float) else f'{str(v):>9s}'
    speed = (f'x{r["speedup_vs_cudnn"]:.2f} vs cudnn'
             if 'speedup_vs_cudnn' in r else '')
    return (f'bn  {str(r["shape"]):22s} {r["mode"]}: ' +
            ', '.join(f'{b} {us(b + "_us")} us' for b in BN_IMPLS) +
            f' {speed}')


# ----------------------------------------------------------------- main --

def print_tables(result):
    print('\n| network | mode | precision | batch | px | reference ms | '
          'auto (fused) ms | speed-up |\n|---|---|---|---|---|---|---|---|')
    for r in result['nets']:
        def v(key):
            x = r.get(key, '')
            return f'{x:.2f}' if isinstance(x, float) else str(x)
        print(f'| {r["net"]} | {r["mode"]} | {r["precision"]} | '
              f'{r["batch"]} | {r["img_size"]} | {v("reference_ms")} | '
              f'{v("auto_ms")} | {v("speedup")} |')
    print('\n| op | mode | shape | reference us | auto (fused) us | '
          'speed-up |\n|---|---|---|---|---|---|')
    for r in result['ops']:
        def v(key):
            x = r.get(key, '')
            return f'{x:.1f}' if isinstance(x, float) else str(x)
        print(f'| {r["op"]} | {r["mode"]} | '
              f'{"x".join(map(str, r["shape"]))} | {v("reference_us")} | '
              f'{v("auto_us")} | {v("speedup")} |')


def print_batchnorm_table(rows):
    print('\n| shape | nets | cudnn us | native us | triton us | cudnn GB/s '
          '| native GB/s | triton GB/s | triton / cudnn speed-up |\n'
          '|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        def v(key, fmt='.1f'):
            x = r.get(key, 'n/a')
            return f'{x:{fmt}}' if isinstance(x, float) else str(x)
        print(f'| {"x".join(map(str, r["shape"]))} | {", ".join(r["nets"])}'
              f' | ' + ' | '.join(v(f'{b}_us') for b in BN_IMPLS) + ' | ' +
              ' | '.join(v(f'{b}_gb_s', '.0f') for b in BN_IMPLS) +
              f' | {v("speedup_vs_cudnn", ".2f")} |')


def main():
    args = parse_args()
    torch.manual_seed(0)
    if args.device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    saved = {var: os.environ.get(var) for var in ENV_VARS}
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    start = time.perf_counter()
    result = dict(
        device=(torch.cuda.get_device_name(args.device)
                if args.device.type == 'cuda' else platform.processor()),
        torch=torch.__version__, triton=triton_version,
        python=platform.python_version(),
        args={k: str(v) if isinstance(v, torch.device) else v
              for k, v in vars(args).items()},
        nets=[], ops=[], batchnorm=[])
    timer = Timer(args.device)
    try:
        if not args.skip_ops:
            result['ops'] = bench_ops(args, timer)
            if 'batchnorm' in args.ops:
                result['batchnorm'] = bench_batchnorm(args, timer)
        if not args.skip_nets:
            result['nets'] = bench_nets(args, timer)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    result['seconds'] = time.perf_counter() - start
    print_tables(result)
    if result['batchnorm']:
        print_batchnorm_table(result['batchnorm'])
    print(f'\n{result["seconds"]:.0f} s')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
