"""Run E, call 2: which fast path changes the network's outputs on CUDA
(max|d|/std against the eager contiguous network, fp32, TF32 off)."""
import copy
import sys
import time

import torch

from mmtinyvim.accelerate import for_inference
from mmtinyvim.models.classifiers import build_classifier

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


class Logits(torch.nn.Module):

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c(x, mode='tensor')


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().std())


variant, scan = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = Logits(build_classifier(variant, scan_backend=scan)[0]).cuda().eval()
x = torch.randn(8, 3, 128, 128, device='cuda')
y = torch.randn_like(x)
with torch.no_grad():
    ref_x, ref_y = model(x), model(y)
    ref_cl = model.to(memory_format=torch.channels_last)(
        x.contiguous(memory_format=torch.channels_last))
    model.to(memory_format=torch.contiguous_format)
print(f'{variant} {scan} eager channels-last: {rel(ref_cl, ref_x):.1e}',
      flush=True)
grid = [dict(deploy=True, channels_last=False, compile=False, cuda_graph=False),
        dict(deploy=True, channels_last=True, compile=False, cuda_graph=False),
        dict(deploy=False, channels_last=False, compile=False, cuda_graph=True),
        dict(deploy=True, channels_last=False, compile=True, cuda_graph=False),
        dict(deploy=True, channels_last=True, compile=True, cuda_graph=True)]
for options in grid:
    tic = time.time()
    try:
        f = for_inference(copy.deepcopy(model), x, **options)
        ex, ey = rel(f(x), ref_x), rel(f(y), ref_y)
        print(f'{variant} {scan} {options}: {ex:.1e} / {ey:.1e} '
              f'({time.time() - tic:.0f} s)', flush=True)
    except Exception as e:  # noqa
        print(f'{variant} {scan} {options}: {type(e).__name__}: {e}'[:400],
              flush=True)
