"""GPU time per kernel category and top kernels of one step per variant.

    python docs/benchmark_runs/profile_kernels.py mobilemamba-s6 mobilemamba-b4
    python docs/benchmark_runs/profile_kernels.py mobilemamba-b4 --fp32 \\
        --deploy --cl --compile
    python docs/benchmark_runs/profile_kernels.py mobilemamba-b4 --train --cl

Inference: batch 256, AMP unless ``--fp32``; ``--train``: forward, cross-
entropy and backward under AMP, batch 128 (no optimizer step).
"""
import argparse
import os
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                'tools', 'analysis_tools'))
import benchmark  # noqa: E402

CATEGORIES = (  # first match wins
    ('selective scan', ('_scan_fwd', '_scan_bwd')),
    ('inductor (fused)', ('triton_',)),
    ('convolution / GEMM', ('conv', 'gemm', 'xmma', 'cutlass', 'sm90',
                            'sm80', 'cudnn', 'implicit', 'wgrad', 'dgrad')),
    ('batch / layer norm', ('bn_', 'batch_norm', 'layer_norm', 'welford')),
    ('copies / layout', ('copy', 'cat', 'nchwToNhwc', 'nhwcToNchw',
                         'flip', 'index')),
    ('element-wise / reduce', ('elementwise', 'reduce', 'Functor')),
)


def category(name: str) -> str:
    for label, keys in CATEGORIES:
        if any(k in name for k in keys):
            return label
    return 'other'


def summarize(events, top):
    """Kernel categories and the ``top`` kernels of profiled CUDA events,
    as printed lines."""
    total = sum(e.self_device_time_total for e in events)
    by_category = defaultdict(float)
    for e in events:
        by_category[category(e.key)] += e.self_device_time_total
    lines = ['   ' + ', '.join(
        f'{k} {v / 1e3:.1f} ms ({100 * v / total:.0f}%)'
        for k, v in sorted(by_category.items(), key=lambda kv: -kv[1]))]
    ranked = sorted(events, key=lambda e: -e.self_device_time_total)
    lines += [f'  {e.self_device_time_total / 1e3:7.2f} ms {e.count:4d}x '
              f'{e.key[:100]}' for e in ranked[:top]]
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('variants', nargs='+')
    parser.add_argument('--fp32', action='store_true')
    parser.add_argument('--train', action='store_true')
    parser.add_argument('--deploy', action='store_true')
    parser.add_argument('--cl', action='store_true')
    parser.add_argument('--compile', action='store_true')
    parser.add_argument('--top', type=int, default=8)
    args = parser.parse_args()
    for name in args.variants:
        model, resolution = benchmark.build_model(name, None)
        model = model.cuda()
        if args.deploy:
            benchmark.switch_to_deploy(model)
        fmt = torch.channels_last if args.cl else torch.contiguous_format
        model = model.to(memory_format=fmt)
        batch = 128 if args.train else 256
        x = torch.randn(batch, 3, resolution, resolution,
                        device='cuda').to(memory_format=fmt)
        labels = torch.randint(0, 1000, (batch, ), device='cuda')
        if args.compile:
            torch._dynamo.reset()
            model = torch.compile(model, dynamic=False)
        model.train(args.train)

        def step():
            with torch.autocast('cuda', torch.float16,
                                enabled=args.train or not args.fp32):
                if args.train:
                    F.cross_entropy(model(x).float(), labels).backward()
                else:
                    with torch.no_grad():
                        model(x)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        events = [e for e in prof.key_averages()
                  if e.device_type == torch.autograd.DeviceType.CUDA]
        total = sum(e.self_device_time_total for e in events)
        what = ('train' if args.train else 'fp32' if args.fp32 else 'AMP') + \
            ''.join(f'+{f}' for f in ('deploy', 'cl', 'compile')
                    if getattr(args, f))
        print(f'== {name} ({what}, batch {batch}): '
              f'{sum(e.count for e in events)} kernels, {total / 1e3:.1f} ms '
              f'GPU time per step')
        print('\n'.join(summarize(events, args.top)))


if __name__ == '__main__':
    main()
