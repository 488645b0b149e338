"""Run I, probe: where detector/segmentor backbone training loses its time,
and what channels-last, CUDA graphs and compile each recover.

    python docs/benchmark_runs/probe_i1.py parts CONFIG [CONFIG ...] \\
        --batch 2 --variants eager cl cl+graph
    python docs/benchmark_runs/probe_i1.py gap

``parts``: backbone+neck forward + backward in training mode under AMP, at
the config's training batch shape (``benchmark.dense_input_shape``), for
each variant: ``eager`` (as built), ``cl`` (model and input channels-last),
``cl+graph`` (the backbone's forward and backward recorded as CUDA graphs by
``record_training_graphs``, the neck eager), ``cl+compile+graph`` (the same,
of the ``torch.compile``-d backbone). Prints ms per step, the GPU's own
kernel time in one profiled step (``gpu_ms``: the floor without launch
gaps), kernel count and peak memory.

``gap``: the default inference path of TinyViM-S and MobileMamba-B1
(classifier, AMP, batch 256) split into its parts: the whole call, the
graph replay alone, the input copy, the output clone, the weight
fingerprint and the hook check (host time).
"""
import argparse
import inspect
import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                'tools', 'analysis_tools'))
import benchmark  # noqa: E402


def build(config_path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope, init_default_scope
    cfg = Config.fromfile(config_path)
    cfg.model.pop('pretrained', None)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model).cuda()
    return cfg, model


def gpu_time(step, top=0):
    """GPU kernel time (ms) and kernel count of one ``step``; with ``top``,
    its kernel categories and top kernels are printed too."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages()
              if e.device_type == torch.autograd.DeviceType.CUDA]
    if top:
        from profile_kernels import summarize
        print('\n'.join(summarize(events, top)), flush=True)
    return (sum(e.self_device_time_total for e in events) / 1e3,
            sum(e.count for e in events))


def parts(args):
    from mmtinyvim.engine import compile_static, record_training_graphs
    for path in args.configs:
        for variant in args.variants:
            torch.cuda.empty_cache()
            torch._dynamo.reset()
            cfg, model = build(path)
            batch, height, width = benchmark.dense_input_shape(cfg)
            batch = args.batch or batch
            model.train()
            cl = 'cl' in variant.split('+')
            fmt = torch.channels_last if cl else torch.contiguous_format
            model.to(memory_format=fmt)
            x = torch.randn(batch, 3, height, width,
                            device='cuda').contiguous(memory_format=fmt)
            graphed = 'graph' in variant
            tic = time.perf_counter()
            row = dict(config=os.path.basename(path), variant=variant,
                       batch=batch, size=f'{height}x{width}')
            try:
                if graphed:
                    target = (compile_static(model.backbone)
                              if 'compile' in variant else model.backbone)
                    backbone = record_training_graphs(target, x,
                                                      torch.float16)
                else:
                    backbone = model.backbone
                row['setup_s'] = round(time.perf_counter() - tic, 1)

                def step():
                    with torch.autocast('cuda', torch.float16,
                                        cache_enabled=not graphed):
                        features = model.neck(backbone(x))
                        loss = sum(f.float().mean() for f in features)
                    loss.backward()
                    model.zero_grad(set_to_none=True)

                torch.cuda.reset_peak_memory_stats()
                seconds, iters = benchmark.time_loop(step, 5, args.min_time)
                gpu_ms, kernels = gpu_time(step, args.top)
                row.update(ms=round(seconds * 1e3, 2), iters=iters,
                           gpu_ms=round(gpu_ms, 2), kernels=kernels,
                           peak_GiB=round(
                               torch.cuda.max_memory_allocated() / 2**30, 2))
            except Exception as error:  # keep going, report it
                row['error'] = f'{type(error).__name__}: {str(error)[:300]}'
            print(json.dumps(row), flush=True)
            del model, x
            backbone = step = None


def host_ms(fn, reps=200):
    fn()
    tic = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - tic) / reps * 1e3


def gap(args):
    from mmtinyvim.engine import accelerate
    for name in ('tinyvim-s', 'mobilemamba-b1'):
        model, resolution = benchmark.build_model(name, None)
        model = model.cuda().eval()
        x = torch.randn(256, 3, resolution, resolution, device='cuda')
        classifier = model.classifier
        backbone = classifier.backbone

        def whole():
            with torch.no_grad(), torch.autocast('cuda', torch.float16):
                return model(x)

        def backbone_call():
            with torch.no_grad(), torch.autocast('cuda', torch.float16):
                return backbone(x)

        for _ in range(4):
            whole()
        path = accelerate.inference_path_of(backbone)
        (key, replay), = path.graphs.items()
        parts_of = inspect.getclosurevars(replay).nonlocals
        static_input = parts_of['static_input']
        graph = parts_of['replay_graph']
        outputs = parts_of['static']['out']
        xc = x.contiguous(memory_format=torch.channels_last)
        row = dict(model=name, key=str(key[:2]))
        for label, fn in (('whole classifier', whole),
                          ('backbone call', backbone_call),
                          ('replay (copy in, graph, clone)',
                           lambda: replay(xc)),
                          ('graph replay alone', graph)):
            seconds, _ = benchmark.time_loop(fn, 5, args.min_time)
            row[label] = round(seconds * 1e3, 3)
        row['input to channels-last'] = benchmark._cuda_ms(
            lambda: x.contiguous(memory_format=torch.channels_last), 50)
        row['copy into static input'] = benchmark._cuda_ms(
            lambda: static_input.copy_(xc), 50)
        row['output clone'] = benchmark._cuda_ms(
            lambda: accelerate._as_built(outputs, fresh=True), 50)
        row['fingerprint (host)'] = round(
            host_ms(lambda: accelerate._fingerprint(path.watched)), 3)
        row['hook check (host)'] = round(
            host_ms(lambda: accelerate._has_hooks(path.modules)), 3)
        feats = replay(xc)

        def head():
            with torch.no_grad(), torch.autocast('cuda', torch.float16):
                return classifier.head(classifier.neck(feats))
        row['neck+head eager'] = benchmark._cuda_ms(head, 50)
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('what', choices=('parts', 'gap'))
    parser.add_argument('configs', nargs='*')
    parser.add_argument('--variants', nargs='+',
                        default=['eager', 'cl', 'cl+graph'])
    parser.add_argument('--batch', type=int)
    parser.add_argument('--min-time', type=float, default=1.0)
    parser.add_argument('--top', type=int, default=0,
                        help='parts: print kernel categories and the top '
                        'kernels of the profiled step')
    args = parser.parse_args()
    print(json.dumps(dict(gpu=torch.cuda.get_device_name(),
                          torch=torch.__version__)), flush=True)
    (parts if args.what == 'parts' else gap)(args)
