"""Run F, call 1: where do for_training's gradients differ from the eager
network's? (MobileMamba-T2 / TinyViM-S, fp32, TF32 off, train mode.)

Compares, per scan backend, the parameter gradients of a sum-of-squares
loss: eager channels-last vs eager contiguous, eager with this backend vs
eager with the torch backend, and for_training vs eager. Prints the five
worst parameters with max|d|, the parameter's own gradient std and the
spread of all gradients."""
import copy
import sys

import torch

from mmtinyvim.accelerate import for_training
from mmtinyvim.models.classifiers import build_classifier

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


class Logits(torch.nn.Module):

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c(x, mode='tensor')


def model_for(variant, scan):
    torch.manual_seed(0)
    return Logits(build_classifier(variant, scan_backend=scan)[0]).cuda()


def gradients(model, x, forward=None):
    model.zero_grad(set_to_none=True)
    out = (forward or model)(x)
    out.float().square().mean().backward()
    return out.detach().clone(), {
        n: p.grad.detach().clone() for n, p in model.named_parameters()
        if p.grad is not None}


def compare(tag, got, ref):
    out_g, grads_g = got
    out_r, grads_r = ref
    missing = sorted(set(grads_r) ^ set(grads_g))
    spread = float(torch.cat([g.flatten() for g in grads_r.values()]).std())
    rows = []
    for name, r in grads_r.items():
        if name not in grads_g:
            continue
        d = float((grads_g[name] - r).abs().max())
        rows.append((d, name, float(r.std()) if r.numel() > 1 else 0.0,
                     float(r.abs().max()), r.numel()))
    rows.sort(reverse=True)
    out_err = float((out_g - out_r).abs().max() / out_r.std())
    print(f'{tag}: output max|d|/std {out_err:.2e}; worst gradient max|d| '
          f'{rows[0][0]:.2e} / spread of all gradients {spread:.2e} = '
          f'{rows[0][0] / spread:.2e}; params only in one: {missing[:4]}',
          flush=True)
    for d, name, std, amax, n in rows[:5]:
        print(f'    {name} (numel {n}): max|d| {d:.2e}, own std {std:.2e}, '
              f'max|g| {amax:.2e}', flush=True)


variant = sys.argv[1]
x = torch.randn(4, 3, 128, 128, device='cuda')
reference = gradients(model_for(variant, 'torch').train(), x)
for scan in sys.argv[2:]:
    model = model_for(variant, scan).train()
    eager = gradients(model, x)
    if scan != 'torch':
        compare(f'{variant} eager {scan} vs eager torch', eager, reference)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    compare(f'{variant} {scan} eager channels-last vs contiguous',
            gradients(cl, x.contiguous(memory_format=torch.channels_last)),
            eager)
    for channels_last in (False, True):
        graphed = copy.deepcopy(model)
        graphed.zero_grad(set_to_none=True)
        try:
            forward = for_training(graphed, x, dtype=None,
                                   channels_last=channels_last)
            compare(f'{variant} {scan} for_training(cl={channels_last}) vs '
                    'eager', gradients(graphed, x, forward), eager)
            # a second step with new data: the graph must not be stale
            y = torch.randn_like(x)
            compare(f'{variant} {scan} for_training(cl={channels_last}) '
                    'step 2 vs eager', gradients(graphed, y, forward),
                    gradients(model, y))
        except Exception as e:  # noqa
            print(f'{variant} {scan} for_training: {type(e).__name__}: {e}'
                  [:400], flush=True)
