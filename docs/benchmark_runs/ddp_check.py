"""Graphed training under DDP, against eager DDP (run with torchrun).

    torchrun --nproc_per_node=N docs/benchmark_runs/ddp_check.py VARIANT ...

For each variant, one process per GPU builds the mmpretrain classifier from
one seed and wraps it as ``tools/train.py`` does under a launcher
(``GraphSafeDistributedDataParallel``, mmengine's DDP wrapper built on
a side stream, which ``--cuda-graph`` selects under a launcher):

* ``check``: fp32 with TF32 off, eager channels-last DDP against DDP with
  ``CUDAGraphTrainingHook`` applied (as ``--cuda-graph`` does),
  same initial weights and per-rank batches, ``--check-steps`` SGD steps:
  the per-step losses and, after the last backward, every gradient
  (worst max|d| / std of all gradients, after the all-reduce);
* ``speed``: AMP fp16 + GradScaler + AdamW training steps at ``--batch``
  per GPU, images/s per GPU, eager (as built) and graphed.

Rank 0 prints one line per result and writes JSON to ``--out``.
"""
import argparse
import json
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.model import MMDistributedDataParallel
from types import SimpleNamespace

from mmtinyvim.engine import (CUDAGraphTrainingHook,
                              GraphSafeDistributedDataParallel)
from mmtinyvim.models.zoo import build_classifier


def logits_of(model, images):
    out = model(images, mode='tensor')
    return out[0] if isinstance(out, (tuple, list)) else out


def build(variant, graphed, channels_last, device, side_stream=False,
          deterministic=False):
    """The DDP-wrapped classifier; ``graphed``: then the hook is applied to
    the wrapped model, in the order mmengine's runner does it.
    ``deterministic``: no stochastic depth (B1/B2/B4 default to 0.03), whose
    random draws differ between the two runs compared (the graph's warm-up
    passes consume random numbers)."""
    torch.manual_seed(0)
    model, res = build_classifier(
        variant, **(dict(drop_path_rate=0.0) if deterministic else {}))
    model = model.to(device)
    if channels_last and not (graphed or side_stream):
        model.to(memory_format=torch.channels_last)
    wrapper = (GraphSafeDistributedDataParallel if graphed or side_stream
               else MMDistributedDataParallel)
    kwargs = {} if wrapper is MMDistributedDataParallel else dict(
        channels_last=channels_last)
    ddp = wrapper(module=model, device_ids=[device], broadcast_buffers=False,
                  **kwargs)
    if graphed:
        CUDAGraphTrainingHook().before_train(SimpleNamespace(model=ddp))
    return ddp, res


def batches(res, batch, rank, n, device):
    gen = torch.Generator(device=f'cuda:{device}').manual_seed(1000 + rank)
    return [(torch.randn(batch, 3, res, res, device=device, generator=gen),
             torch.randint(0, 1000, (batch, ), device=device, generator=gen))
            for _ in range(n)]


def check(variant, args, rank, device, pair=('eager', 'graphed')):
    """``pair``: the two models compared: 'eager' (mmengine's wrapper),
    'eager-side' (eager, wrapper built on a side stream), 'graphed';
    ('eager', 'eager') measures the run-to-run floor (non-deterministic
    kernels)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    results = {}
    for graphed in (False, True):
        kind = pair[int(graphed)]
        ddp, res = build(variant, kind == 'graphed', True, device,
                         side_stream=kind == 'eager-side',
                         deterministic=True)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
        data = batches(res, args.check_batch, rank, args.check_steps, device)
        losses = []
        for i, (x, y) in enumerate(data):
            opt.zero_grad()
            loss = F.cross_entropy(logits_of(ddp, x).float(), y)
            loss.backward()
            losses.append(loss.item())
            if i < len(data) - 1:
                opt.step()
        named = [(n, p.grad.detach().clone())
                 for n, p in ddp.named_parameters() if p.grad is not None]
        names = [n for n, _ in named]
        grads = [g for _, g in named]
        results[graphed] = (losses, grads)
        del ddp, opt
    (l0, g0), (l1, g1) = results[False], results[True]
    assert len(g0) == len(g1), (len(g0), len(g1))
    std = torch.cat([g.flatten() for g in g0]).std().item()
    worst = max((a - b).abs().max().item() for a, b in zip(g0, g1)) / std
    loss_rel = max(abs(a - b) / abs(a) for a, b in zip(l0, l1))
    # every rank ends with the same (all-reduced) gradient
    flat = torch.cat([g.flatten() for g in g1])
    other = flat.clone()
    dist.broadcast(other, 0)
    rank_spread = (flat - other).abs().max().item() / std
    # where the difference is: the parameters with the largest max|d|, each
    # also against its own gradient (max|d| / max|g|, ||d|| / ||g||)
    per_param = sorted(
        ((n, (a - b).abs().max().item() / std,
          (a - b).abs().max().item() / max(a.abs().max().item(), 1e-30),
          (a - b).norm().item() / max(a.norm().item(), 1e-30))
         for n, a, b in zip(names, g0, g1)), key=lambda t: -t[1])
    total_rel = (torch.cat([(a - b).flatten() for a, b in zip(g0, g1)]).norm()
                 / torch.cat([a.flatten() for a in g0]).norm()).item()
    return dict(losses_eager=l0, losses_graphed=l1, loss_max_rel=loss_rel,
                grad_max_abs_over_std=worst, rank_spread_over_std=rank_spread,
                grad_rel_l2=total_rel,
                worst_params=[dict(name=n, max_abs_over_std=a,
                                   max_abs_over_own_max=b, rel_l2=c)
                              for n, a, b, c in per_param[:4]])


def speed(variant, args, rank, device):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    out = {}
    for name, graphed, cl in (('eager', False, False),
                              ('graphed', True, True)):
        ddp, res = build(variant, graphed, cl, device)
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler('cuda')
        data = batches(res, args.batch, rank, 4, device)

        def step(i):
            x, y = data[i % len(data)]
            opt.zero_grad(set_to_none=True)
            with torch.autocast('cuda', dtype=torch.float16):
                loss = F.cross_entropy(logits_of(ddp, x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        for i in range(args.warmup):
            step(i)
        torch.cuda.synchronize()
        dist.barrier()
        start = time.perf_counter()
        for i in range(args.steps):
            step(i)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        out[name] = args.batch * args.steps / elapsed
        out[f'{name}_peak_gib'] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
        del ddp, opt
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('variants', nargs='+')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--check-batch', type=int, default=16)
    parser.add_argument('--check-steps', type=int, default=3)
    parser.add_argument('--parts', nargs='+', default=['check', 'speed'])
    parser.add_argument('--out')
    args = parser.parse_args()
    dist.init_process_group('nccl')
    rank, world = dist.get_rank(), dist.get_world_size()
    device = rank % torch.cuda.device_count()
    torch.cuda.set_device(device)
    report = dict(world_size=world, gpu=torch.cuda.get_device_name(),
                  torch=torch.__version__, batch_per_gpu=args.batch,
                  results={})
    for variant in args.variants:
        entry = {}
        if 'check' in args.parts:
            entry['check'] = check(variant, args, rank, device)
        if 'check-repeat' in args.parts:  # eager against eager: the floor
            entry['check-repeat'] = check(variant, args, rank, device,
                                          ('eager', 'eager'))
        if 'check-side' in args.parts:
            entry['check-side'] = check(variant, args, rank, device,
                                        ('eager', 'eager-side'))
        if 'speed' in args.parts:
            entry['speed'] = speed(variant, args, rank, device)
        report['results'][variant] = entry
        if rank == 0:
            print(f'[world {world}] {variant}: {json.dumps(entry)}',
                  flush=True)
    if rank == 0 and args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
