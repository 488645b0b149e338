"""Which operators launch cuDNN's layout-transpose kernels (one eager step
of a deployed, channels-last variant): operator, input shapes, GPU ms.

    python docs/benchmark_runs/find_transposes.py mobilemamba-b4 [--fp32]
"""
import argparse
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                'tools', 'analysis_tools'))
import benchmark  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument('variants', nargs='+')
parser.add_argument('--fp32', action='store_true')
parser.add_argument('--pattern', default='Transpose')
args = parser.parse_args()
for name in args.variants:
    model, resolution = benchmark.build_model(name, None)
    model = benchmark.switch_to_deploy(model.cuda().eval())
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(256, 3, resolution, resolution, device='cuda').to(
        memory_format=torch.channels_last)

    def step():
        with torch.no_grad(), torch.autocast('cuda', torch.float16,
                                             enabled=not args.fp32):
            model(x)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                 record_shapes=True) as prof:
        step()
        torch.cuda.synchronize()
    found = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        kernels = [k for k in getattr(event, 'kernels', [])
                   if args.pattern in k.name]
        if kernels and event.name.startswith('aten::') and \
                not any(child.kernels for child in event.cpu_children
                        if any(args.pattern in k.name
                               for k in child.kernels)):
            key = (event.name, str(event.input_shapes)[:160])
            found[key][0] += len(kernels)
            found[key][1] += sum(k.duration for k in kernels) / 1e3
    print(f'== {name} ({"fp32" if args.fp32 else "AMP"}): kernels matching '
          f'{args.pattern!r} by operator')
    for (op, shapes), (count, ms) in sorted(found.items(),
                                            key=lambda kv: -kv[1][1]):
        print(f'  {ms:7.2f} ms {count:3d}x {op} {shapes}')
