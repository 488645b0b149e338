"""Train a config for a few iterations under autocast and check that losses
and gradients stay finite.

* float16 (CUDA): mmengine's ``AmpOptimWrapper`` with dynamic loss scaling,
  what ``tools/train.py --amp`` uses. An overflow of the *scaled* gradients
  is the loss scaler's normal way to find its scale: that step is skipped
  and the scale halved; it is reported, and counts as a failure only when it
  happens on more than ``max_skipped_steps`` iterations.
* bfloat16 (CPU or CUDA): float32's exponent range, so no loss scaling; the
  config's optimizer wrapper, with the forward pass under ``torch.autocast``.
  mmcv 2.1's CPU kernels of ``nms`` and ``roi_align`` accept float32 only, so
  on CPU these two ops get float32 inputs (:func:`mmcv_cpu_ops_in_float32`).

The learning rate stays at the optimizer's base value (the param schedulers'
warm-up is not applied), which is harsher than real training.
"""
import contextlib
import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from .optim_wrappers import (amp_optim_wrapper_type,
                             float32_optim_wrapper_type,
                             is_amp_optim_wrapper)

DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16}


@dataclass
class IterationRecord:
    iteration: int
    loss: float
    nonfinite_losses: List[str] = field(default_factory=list)
    nonfinite_grads: List[str] = field(default_factory=list)
    grad_norm: float = 0.0
    loss_scale: Optional[float] = None
    step_skipped: bool = False

    @property
    def finite(self) -> bool:
        return not self.nonfinite_losses and not self.nonfinite_grads

    def __str__(self):
        scale = ('' if self.loss_scale is None else
                 f'  loss_scale {self.loss_scale:8.0f}')
        state = 'ok' if self.finite else 'NON-FINITE ' + ', '.join(
            self.nonfinite_losses + self.nonfinite_grads[:3])
        if self.step_skipped:
            state += ' (scaled gradients overflowed: step skipped)'
        return (f'iter {self.iteration:4d}  loss {self.loss:10.4f}  '
                f'grad_norm {self.grad_norm:10.4f}{scale}  {state}')


def amp_config(cfg, dtype: str, device: str):
    """A copy of ``cfg`` whose optimizer wrapper suits ``dtype`` on
    ``device``: ``AmpOptimWrapper`` with dynamic loss scaling for float16
    (CUDA only), the config's own wrapper for bfloat16."""
    if dtype not in DTYPES:
        raise ValueError(f'Unknown autocast dtype {dtype!r}; valid: '
                         f'{", ".join(DTYPES)}')
    if device not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    cfg = copy.deepcopy(cfg)
    if dtype == 'float16':
        if device != 'cuda':
            raise ValueError('float16 training needs loss scaling, which '
                             "mmengine's AmpOptimWrapper offers on CUDA only; "
                             'use bfloat16 on CPU')
        cfg.optim_wrapper.type = amp_optim_wrapper_type(
            cfg.optim_wrapper.get('type', 'OptimWrapper'))
        cfg.optim_wrapper.dtype = 'float16'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif is_amp_optim_wrapper(cfg.optim_wrapper.get('type', 'OptimWrapper')):
        cfg.optim_wrapper.type = float32_optim_wrapper_type(
            cfg.optim_wrapper.type)
        for key in ('dtype', 'loss_scale'):
            cfg.optim_wrapper.pop(key, None)
    return cfg


def _to_float32(value):
    if torch.is_tensor(value) and value.dtype in (torch.bfloat16,
                                                  torch.float16):
        return value.float()
    return value


def _in_float32(method):
    """Wrap an autograd ``forward``/``backward(ctx, ...)``: half-precision
    tensor arguments become float32, autocast is off inside, and floating
    results go back to the dtype of the first half-precision argument."""

    def wrapped(ctx, *args):
        low = next((a.dtype for a in args if torch.is_tensor(a) and
                    a.dtype in (torch.bfloat16, torch.float16)), None)
        if low is None:
            return method(ctx, *args)
        with torch.autocast('cpu', enabled=False):
            results = method(ctx, *map(_to_float32, args))
        if isinstance(results, tuple):
            return tuple(r.to(low) if torch.is_tensor(r) and
                         r.is_floating_point() else r for r in results)
        if torch.is_tensor(results) and results.is_floating_point():
            return results.to(low)
        return results

    return staticmethod(wrapped)


@contextlib.contextmanager
def mmcv_cpu_ops_in_float32():
    """Run mmcv's ``nms`` and ``roi_align`` in float32 under CPU autocast.

    Their CPU kernels dispatch on float32/float64 only and raise on the
    bfloat16 tensors that CPU autocast produces. Inside this context their
    autograd functions compute in float32 and hand results back in the
    dtype they were given (mmdet writes RoI features into a tensor of the
    feature maps' dtype). Restored on exit; CUDA kernels take half precision
    and are not used here.
    """
    from mmcv.ops.nms import NMSop
    from mmcv.ops.roi_align import RoIAlignFunction
    saved = [(function, {name: function.__dict__[name]
                         for name in ('forward', 'backward')
                         if name in function.__dict__})
             for function in (NMSop, RoIAlignFunction)]
    try:
        for function, methods in saved:
            for name, method in methods.items():
                setattr(function, name, _in_float32(method.__func__))
        yield
    finally:
        for function, methods in saved:
            for name, method in methods.items():
                setattr(function, name, method)


def _nonfinite_losses(log_vars) -> List[str]:
    return [name for name, value in log_vars.items()
            if not torch.isfinite(torch.as_tensor(value)).all()]


def _train_step(model, optim_wrapper, scaler, data, dtype, iteration):
    """One mmengine train step (``BaseModel.train_step``) with the gradients
    inspected between backward and the optimizer step."""
    device_type = next(model.parameters()).device.type
    with optim_wrapper.optim_context(model), \
            torch.autocast(device_type, dtype=DTYPES[dtype]):
        data = model.data_preprocessor(data, True)
        losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    optim_wrapper.backward(loss)
    scale = scaler.get_scale() if scaler is not None else 1.0
    grads = [(name, p.grad) for name, p in model.named_parameters()
             if p.grad is not None]
    record = IterationRecord(
        iteration, loss.item(), _nonfinite_losses(log_vars),
        [name for name, grad in grads if not torch.isfinite(grad).all()],
        math.sqrt(sum(grad.float().pow(2).sum().item()
                      for _, grad in grads)) / scale,
        scale if scaler is not None else None)
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    if scaler is not None and scaler.get_scale() < scale:
        # the scaled float16 gradients overflowed: finding the scale is the
        # loss scaler's job, not a numerical failure of the model
        record.step_skipped = True
        record.nonfinite_grads = []
    return record


def train_under_autocast(runner, iterations: int, dtype: str,
                         log=print) -> List[IterationRecord]:
    """Run ``iterations`` training steps of ``runner`` (built from
    :func:`amp_config`'s config) with the forward pass under autocast to
    ``dtype``; returns one record per iteration."""
    from mmengine.optim import AmpOptimWrapper
    model = runner.model
    if hasattr(model, 'init_weights'):
        model.init_weights()
    optim_wrapper = runner.build_optim_wrapper(runner.cfg.optim_wrapper)
    scaler = (optim_wrapper.loss_scaler
              if isinstance(optim_wrapper, AmpOptimWrapper) else None)
    batches = itertools.cycle(
        runner.build_dataloader(runner.cfg.train_dataloader))
    on_cpu = next(model.parameters()).device.type == 'cpu'
    model.train()
    records = []
    with mmcv_cpu_ops_in_float32() if on_cpu else contextlib.nullcontext():
        for iteration in range(1, iterations + 1):
            records.append(_train_step(model, optim_wrapper, scaler,
                                       next(batches), dtype, iteration))
            log(str(records[-1]))
    return records


def summarize(records: List[IterationRecord], max_skipped_steps: int = 5):
    """(passed, one-line verdict) for the records of one run."""
    bad = [r.iteration for r in records if not r.finite]
    skipped = [r.iteration for r in records if r.step_skipped]
    passed = not bad and len(skipped) <= max_skipped_steps
    verdict = (f'{"PASS" if passed else "FAIL"}: {len(records)} iterations, '
               f'non-finite losses/gradients at {bad or "none"}, '
               f'loss-scaler skipped steps at {skipped or "none"} '
               f'(allowed: {max_skipped_steps})')
    return passed, verdict
