"""GPU timing of the fused Laplace-mixer tail against the torch composition.

    python tools/analysis_tools/bench_laplace.py --out work_dirs/laplace.json
    python tools/analysis_tools/bench_laplace.py s --skip-backbone

(a) The op alone (``mmtinyvim.ops.laplace_upsample_residual``, Triton,
against :func:`~mmtinyvim.ops.laplace_upsample_residual_reference`) at the
shapes of every TinyViM mixer with a pool factor > 1, as the mixer calls it
(``low`` a channel-split view, ``y`` the permuted scan output, ``pooled``
given; the pooling itself is the same in both and not timed): inference
forward at ``--infer-batch`` in float16 and float32, and forward+backward at
``--train-batch`` in float16. Per call: mean of CUDA-event timed runs of
back-to-back calls; best of ``--rounds`` rounds, the two implementations
alternating; plus the largest difference between them.

(b) The whole backbone as built (``TinyViM(arch)``,
``eval()``, no graphs, no folding), inference img/s at ``--infer-batch``
under AMP (float16 autocast) and in float32, and a forward+backward of the
training-mode backbone at ``--train-batch`` under AMP; each with the kernel
(``MMTINYVIM_LAPLACE_BACKEND=triton``) and with the composition
(``reference``) in the same process: the eager model on the reference path
is the same-run baseline. Scans use their default backend. ``--compile``
adds the backbone under ``torch.compile`` (AMP inference), where the
reference is inductor's own fusion of the composition.

Needs a CUDA device, and what ``import mmtinyvim`` needs (mmengine, mmcv,
mmpretrain, mmdet).
"""
import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F

from mmtinyvim.models.backbones.tinyvim import (LOW_FREQUENCY_SHARES,
                                                POOL_FACTORS, STAGE_STRIDES,
                                                TinyViM)
from mmtinyvim.ops.laplace import (ENV_VAR, laplace_upsample_residual,
                                   laplace_upsample_residual_reference)

IMPLS = ('triton', 'reference')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    # argparse checks a nargs='*' default list against choices as one value,
    # so the default is filled in after parsing
    parser.add_argument('variants', nargs='*',
                        choices=sorted(TinyViM.arch_zoo),
                        help='TinyViM variants (default: all)')
    parser.add_argument('--resolution', type=int, default=224)
    parser.add_argument('--infer-batch', type=int, default=256)
    parser.add_argument('--train-batch', type=int, default=128)
    parser.add_argument('--min-time', type=float, default=0.5,
                        help='seconds per timed round')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--skip-ops', action='store_true')
    parser.add_argument('--skip-backbone', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='also time the backbone under torch.compile '
                        '(inductor, AMP inference): the custom op against '
                        "inductor's own fusion of the composition")
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    args.variants = args.variants or sorted(TinyViM.arch_zoo)
    return args


def timed(step, min_time: float) -> float:
    """Seconds per call of ``step`` (back-to-back calls between two CUDA
    events, as many as fill ``min_time``)."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(5, int(min_time / once))
    begin, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
    begin.record()
    for _ in range(calls):
        step()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / 1e3 / calls


def alternate(steps: dict, rounds: int, min_time: float) -> dict:
    """Best time per call of each named step, the steps alternating."""
    best = {}
    for _ in range(rounds):
        for name, step in steps.items():
            t = timed(step, min_time)
            best[name] = min(best.get(name, t), t)
    return best


def mixer_shapes(arch: str, resolution: int):
    """(stage, low channels, H, W, p) of the mixers with p > 1."""
    widths = TinyViM.arch_zoo[arch]['widths']
    for stage, width in enumerate(widths):
        p = POOL_FACTORS[stage]
        if p > 1:
            side = resolution // STAGE_STRIDES[stage]
            yield stage, int(width * LOW_FREQUENCY_SHARES[stage]), side, \
                side, p, width


def op_inputs(batch, width, channels, height, side_w, p, dtype, grad):
    x = torch.randn(batch, width, height, side_w, device='cuda', dtype=dtype)
    low = x[:, :channels]
    y = torch.randn(batch, height // p, side_w // p, channels, device='cuda',
                    dtype=dtype).permute(0, 3, 1, 2)
    pooled = F.avg_pool2d(low, p)
    if grad:
        low, y, pooled = (t.detach().requires_grad_()
                          for t in (low, y, pooled))
    return y, low, pooled


def bench_ops(args, arch):
    rows = []
    for stage, channels, height, side_w, p, width in mixer_shapes(
            arch, args.resolution):
        for mode, batch, dtype in (
                ('infer', args.infer_batch, torch.float16),
                ('infer', args.infer_batch, torch.float32),
                ('train', args.train_batch, torch.float16)):
            grad = mode == 'train'
            y, low, pooled = op_inputs(batch, width, channels, height, side_w,
                                       p, dtype, grad)
            fns = {
                'triton': lambda a, b, c: laplace_upsample_residual(
                    a, b, p, pooled=c, backend='triton'),
                'reference': lambda a, b, c:
                laplace_upsample_residual_reference(a, b, p, c)}
            outs = {k: fn(y, low, pooled) for k, fn in fns.items()}
            g = torch.randn_like(outs['reference'])
            diff = float((outs['triton'].float() -
                          outs['reference'].float()).abs().max())
            if grad:
                grads = {k: torch.autograd.grad(outs[k], (y, low, pooled), g)
                         for k in fns}
                diff = max([diff] + [
                    float((a.float() - b.float()).abs().max())
                    for a, b in zip(grads['triton'], grads['reference'])])

                def step(fn):
                    return lambda: torch.autograd.grad(
                        fn(y, low, pooled), (y, low, pooled), g)
            else:
                def step(fn):
                    def run():
                        with torch.no_grad():
                            fn(y, low, pooled)
                    return run
            del outs
            times = alternate({k: step(fn) for k, fn in fns.items()},
                              args.rounds, args.min_time)
            size = low.element_size()
            # the fused op's own traffic: low read and out written (and for
            # the backward the gradient read), the pooled-grid tensors
            full = batch * channels * height * side_w * size
            small = full // (p * p)
            moved = (2 * full + 2 * small) * (2 if grad else 1)
            rows.append(dict(
                arch=arch, stage=stage, mode=mode, dtype=str(dtype)[6:],
                shape=[batch, channels, height, side_w], p=p,
                triton_us=times['triton'] * 1e6,
                reference_us=times['reference'] * 1e6,
                speedup=times['reference'] / times['triton'],
                triton_GBps=moved / times['triton'] / 1e9,
                max_abs_diff=diff))
            print('op  {arch} stage{stage} {mode:5s} {dtype:8s} {shape} '
                  'p={p}: triton {triton_us:8.1f} us, reference '
                  '{reference_us:8.1f} us, x{speedup:.2f}, '
                  '{triton_GBps:6.0f} GB/s, '
                  'max|d| {max_abs_diff:.1e}'.format(**rows[-1]), flush=True)
    return rows


def bench_backbone(args, arch):
    rows = []
    model = TinyViM(arch).cuda()
    images = torch.randn(args.infer_batch, 3, args.resolution,
                         args.resolution, device='cuda')
    train_images = images[:args.train_batch]

    def infer(amp):
        def run():
            with torch.no_grad(), torch.autocast('cuda', torch.float16,
                                                 enabled=amp):
                model(images)
        return run

    def train():
        with torch.autocast('cuda', torch.float16):
            outs = model(train_images)
        sum(o.float().mean() for o in outs).backward()

    cases = (('infer', 'amp', infer(True), args.infer_batch),
             ('infer', 'fp32', infer(False), args.infer_batch),
             ('train', 'amp', train, args.train_batch))
    for mode, precision, step, batch in cases:
        model.train(mode == 'train')
        best = {}
        for _ in range(args.rounds):
            for impl in IMPLS:
                os.environ[ENV_VAR] = impl
                t = timed(step, 2 * args.min_time)
                best[impl] = min(best.get(impl, t), t)
        model.zero_grad(set_to_none=True)
        rows.append(dict(
            arch=arch, mode=mode, precision=precision, batch=batch,
            resolution=args.resolution,
            triton_img_s=batch / best['triton'],
            reference_img_s=batch / best['reference'],
            speedup=best['reference'] / best['triton']))
        print('net TinyViM-{arch} {mode} {precision} batch {batch}: '
              'triton {triton_img_s:8.0f} img/s, reference '
              '{reference_img_s:8.0f} img/s, x{speedup:.3f}'.format(
                  **rows[-1]), flush=True)
    if args.compile:
        model.eval()
        best = {}
        for impl in IMPLS:
            # the backend is chosen while dynamo traces: a fresh compile each
            os.environ[ENV_VAR] = impl
            torch._dynamo.reset()
            compiled = torch.compile(model, dynamic=False)

            def run():
                with torch.no_grad(), torch.autocast('cuda', torch.float16):
                    compiled(images)
            best[impl] = timed(run, 2 * args.min_time)
        torch._dynamo.reset()
        batch = args.infer_batch
        rows.append(dict(
            arch=arch, mode='infer+compile', precision='amp', batch=batch,
            resolution=args.resolution,
            triton_img_s=batch / best['triton'],
            reference_img_s=batch / best['reference'],
            speedup=best['reference'] / best['triton']))
        print('net TinyViM-{arch} {mode} {precision} batch {batch}: '
              'triton {triton_img_s:8.0f} img/s, reference '
              '{reference_img_s:8.0f} img/s, x{speedup:.3f}'.format(
                  **rows[-1]), flush=True)
    os.environ.pop(ENV_VAR, None)
    return rows


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('bench_laplace.py needs a CUDA device')
    import triton
    torch.manual_seed(0)
    result = dict(device=torch.cuda.get_device_name(),
                  torch=torch.__version__, triton=triton.__version__,
                  python=platform.python_version(), args=vars(args),
                  ops=[], backbone=[])
    for arch in args.variants:
        if not args.skip_ops:
            result['ops'] += bench_ops(args, arch)
        if not args.skip_backbone:
            result['backbone'] += bench_backbone(args, arch)
    print('\n| variant | mode | precision | batch | fused img/s | '
          'reference img/s | speed-up |\n|---|---|---|---|---|---|---|')
    for r in result['backbone']:
        print(f'| TinyViM-{r["arch"].upper()} | {r["mode"]} | '
              f'{r["precision"]} | {r["batch"]} | {r["triton_img_s"]:.0f} | '
              f'{r["reference_img_s"]:.0f} | {r["speedup"]:.3f} |')
    print('\n| variant | stage | mode | dtype | shape | p | fused us | '
          'reference us | speed-up | fused GB/s |\n'
          '|---|---|---|---|---|---|---|---|---|---|')
    for r in result['ops']:
        print(f'| TinyViM-{r["arch"].upper()} | {r["stage"]} | {r["mode"]} | '
              f'{r["dtype"]} | {"x".join(map(str, r["shape"]))} | {r["p"]} '
              f'| {r["triton_us"]:.1f} | {r["reference_us"]:.1f} | '
              f'{r["speedup"]:.2f} | {r["triton_GBps"]:.0f} |')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
