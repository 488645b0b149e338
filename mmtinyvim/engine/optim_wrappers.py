"""Optimizer wrappers that take no step on a non-finite loss, input or
gradient (:class:`NonFiniteGuardOptimWrapper`,
:class:`NonFiniteGuardAmpOptimWrapper`, registered in mmengine's
``OPTIM_WRAPPERS``), and the mapping between mmengine's wrapper types and
the guarded ones that ``tools/train.py`` and the amp tools use."""
import inspect
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss or
    gradient."""


# what a skipped iteration had, when nothing names it more precisely
NONFINITE_REASONS = {'loss': 'non-finite loss', 'inputs': 'NaN/inf in the inputs',
            'buffers': 'non-finite buffers (BatchNorm statistics) after the '
                       'forward pass'}


@dataclass
class SkipReport:
    """One optimizer step that was not taken.

    ``bad``: this rank's iterations of the step's accumulation window with a
    non-finite loss or input, as ``(iteration, 'loss' | 'inputs')``;
    ``gradients``: the losses were finite but a gradient was not; neither:
    another rank had the non-finite value."""
    iteration: int
    bad: List[Tuple[int, str]] = field(default_factory=list)
    gradients: bool = False
    consecutive: int = 0
    total: int = 0

    def what(self, describe=None):
        """``iteration N: <what was non-finite>`` for each bad iteration;
        ``describe(iteration, reason)`` may name it better (loss terms,
        images) or return None."""
        describe = describe or (lambda iteration, reason: None)
        parts = [f'iteration {it}: '
                 f'{describe(it, reason) or NONFINITE_REASONS[reason]}'
                 for it, reason in self.bad]
        if not parts:
            where = ('non-finite gradients' if self.gradients else
                     'a non-finite loss or gradient on another rank')
            parts = [f'iteration {self.iteration}: {where}']
        return '; '.join(parts)

    def message(self, describe=None):
        return (f'Skipped the optimizer step ({self.what(describe)}); the '
                f'weights are unchanged. {self.consecutive} consecutive, '
                f'{self.total} in all.')

    def limit_message(self, describe=None):
        return (f'Training stopped: {self.consecutive} consecutive optimizer '
                f'steps had a non-finite loss or gradient (last '
                f'{self.what(describe)}). Lower the learning rate, enable '
                'gradient clipping, or check the data; the checkpoints '
                'written so far hold finite weights.')


@dataclass
class ScalerSkipReport:
    """A step that the fp16 loss scaler skipped (its scale went down)."""
    iteration: int
    scale_before: float
    scale_after: float
    total: int

    def message(self, describe=None):
        return (f'Iteration {self.iteration}: fp16 loss scaler skipped the '
                f'step (scaled gradients overflowed; scale '
                f'{self.scale_before:g} -> {self.scale_after:g}); '
                f'{self.total} such steps skipped so far')


class _BufferSnapshot:
    """The model's buffers as they were before a forward pass, to be put
    back when that pass is not trained on: a non-finite batch must not leave
    NaN/inf in BatchNorm's running statistics (a NaN running mean makes the
    next checkpoint and every evaluation fail). One concatenation per dtype
    and device, so a few kernel launches per step."""

    def __init__(self, model):
        groups = {}
        self._floating = [b for b in model.buffers() if b.is_floating_point()]
        for buffer in model.buffers():
            groups.setdefault((buffer.dtype, buffer.device),
                              []).append(buffer)
        with torch.no_grad():
            self._groups = [
                (buffers, torch.cat([b.detach().reshape(-1)
                                     for b in buffers]))
                for buffers in groups.values()]

    def largest(self):
        """The largest |entry| of the floating-point buffers now (a 0-dim
        tensor; NaN/inf propagate into it), without a sync."""
        if not self._floating:
            return None
        return torch.nn.utils.get_total_norm(self._floating,
                                             norm_type=float('inf'))

    def restore(self):
        with torch.no_grad():
            for buffers, flat in self._groups:
                pieces = flat.split([b.numel() for b in buffers])
                for buffer, piece in zip(buffers, pieces):
                    buffer.copy_(piece.view_as(buffer))


class NonFiniteGuardMixin:
    """No optimizer step on a non-finite loss, input or gradient.

    Mixed into mmengine's wrappers by :class:`NonFiniteGuardOptimWrapper`
    and :class:`NonFiniteGuardAmpOptimWrapper`. When the loss (or, without
    fp16 loss scaling, any gradient) is NaN/inf, the forward pass left a
    buffer (a BatchNorm statistic) NaN/inf, or :meth:`mark_nonfinite_inputs`
    was called for the batch,
    ``optimizer.step()`` is not called and the gradients are cleared; the
    model's buffers (BatchNorm statistics) are put back as they were before
    that batch's forward pass. With ``accumulative_counts`` a non-finite
    iteration anywhere in the window skips the window's step. Backward
    still runs, so that every distributed rank takes part in the gradient
    all-reduce; the ranks agree on skipping. With fp16 loss scaling the
    scaler's own skips are kept and counted.

    Each skip gives a report (:class:`SkipReport`,
    :class:`ScalerSkipReport`), logged as a warning here, or, once
    :meth:`collect_reports` was called (``NonFiniteGuardHook`` does), kept
    in ``reports`` for a hook that names the loss terms and images.
    ``max_consecutive_skips`` skipped steps in a row (0: never) stop
    training with :class:`NonFiniteLossError`.
    """

    def __init__(self, *args, max_consecutive_skips: int = 10, **kwargs):
        if (not isinstance(max_consecutive_skips, int)
                or isinstance(max_consecutive_skips, bool)
                or max_consecutive_skips < 0):
            raise ValueError(
                f'{type(self).__name__}: max_consecutive_skips must be an '
                f'int >= 0 (0: never stop), got {max_consecutive_skips!r}')
        super().__init__(*args, **kwargs)
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_nonfinite = 0
        self.skipped_by_scaler = 0
        self.consecutive_skips = 0
        self.reports = None
        # (iteration, reason) of this accumulation window's bad iterations
        self.pending_nonfinite: List[Tuple[int, str]] = []
        self._inputs_bad = False
        self._buffers = None

    def collect_reports(self):
        """Keep the skip reports in ``self.reports`` (a list) for the
        caller to log, and leave stopping at ``max_consecutive_skips`` to
        it (:meth:`limit_reached`)."""
        if self.reports is None:
            self.reports = []
        return self.reports

    def mark_nonfinite_inputs(self):
        """The batch about to be trained on had NaN/inf inputs: skip its
        step (the caller made the values finite or knows the forward copes
        with them)."""
        self._inputs_bad = True

    def limit_reached(self, report):
        return bool(isinstance(report, SkipReport)
                    and self.max_consecutive_skips
                    and report.consecutive >= self.max_consecutive_skips)

    @contextmanager
    def optim_context(self, model):
        # mmengine's train_step runs the data preprocessor and the forward
        # pass inside this context: the buffers before them are kept
        self._buffers = _BufferSnapshot(model)
        with super().optim_context(model):
            yield

    def _grads_finite(self):
        # the largest |entry| over all gradients (torch's fused multi-tensor
        # norm: a few launches and one sync per step, not a check per
        # parameter); NaN and inf propagate into it, large finite values
        # cannot overflow it as a 2-norm could
        grads = [param.grad for group in self.optimizer.param_groups
                 for param in group['params'] if param.grad is not None]
        if not grads:
            return True
        return bool(torch.isfinite(
            torch.nn.utils.get_total_norm(grads, norm_type=float('inf'))))

    @staticmethod
    def _agree(flag):
        """Whether any rank saw a non-finite value (ranks must agree on
        skipping, or their weights drift apart)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return flag
        if dist.get_backend() == 'nccl' and torch.cuda.is_available():
            device = torch.device('cuda', torch.cuda.current_device())
        else:
            device = torch.device('cpu')
        tensor = torch.tensor([float(flag)], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def _nonfinite_forward(self, loss):
        """'loss' or 'buffers' where the forward pass made them NaN/inf
        (one sync for both), else None."""
        checks = [torch.isfinite(loss.detach()).all()]
        largest = (self._buffers.largest() if self._buffers is not None
                   else None)
        if largest is not None:
            checks.append(torch.isfinite(largest).to(checks[0].device))
        finite = torch.stack(checks).tolist()
        if not finite[0]:
            return 'loss'
        return None if all(finite) else 'buffers'

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        step_kwargs = {} if step_kwargs is None else step_kwargs
        zero_kwargs = {} if zero_kwargs is None else zero_kwargs
        iteration = self.inner_count + 1
        reason = 'inputs' if self._inputs_bad else None
        if reason is None:
            reason = self._nonfinite_forward(loss)
        self._inputs_bad = False
        # backward also when the loss is not finite: distributed ranks
        # must take part in the gradient all-reduce
        self.backward(self.scale_loss(loss))
        if reason is not None:
            self.pending_nonfinite.append((iteration, reason))
            # after backward: BatchNorm's backward checks that its running
            # statistics are the versions its forward saw
            if self._buffers is not None:
                self._buffers.restore()
        self._buffers = None
        if not self.should_update():
            return
        amp = hasattr(self, 'loss_scaler')
        bad = bool(self.pending_nonfinite)
        grads_bad = not bad and not amp and not self._grads_finite()
        if self._agree(bad or grads_bad):
            self.zero_grad(**zero_kwargs)
            self.skipped_nonfinite += 1
            self.consecutive_skips += 1
            report = SkipReport(iteration, self.pending_nonfinite, grads_bad,
                                self.consecutive_skips,
                                self.skipped_nonfinite)
            self.pending_nonfinite = []
            self._report(report)
            return
        scale = self.loss_scaler.get_scale() if amp else None
        self.step(**step_kwargs)
        self.zero_grad(**zero_kwargs)
        self.consecutive_skips = 0
        if amp:
            after = self.loss_scaler.get_scale()
            if after < scale:
                self.skipped_by_scaler += 1
                self._report(ScalerSkipReport(iteration, scale, after,
                                              self.skipped_by_scaler))

    def _report(self, report):
        if self.reports is not None:
            self.reports.append(report)
            return
        print_log(report.message(), logger='current', level=logging.WARNING)
        if self.limit_reached(report):
            raise NonFiniteLossError(report.limit_message())


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the non-finite guard
    (:class:`NonFiniteGuardMixin`); takes ``max_consecutive_skips``
    (default 10, 0: never stop) besides ``OptimWrapper``'s arguments."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardAmpOptimWrapper(NonFiniteGuardMixin, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with the non-finite guard
    (:class:`NonFiniteGuardMixin`); takes ``max_consecutive_skips``
    (default 10, 0: never stop) besides ``AmpOptimWrapper``'s
    arguments."""


GUARDED = {OptimWrapper: 'NonFiniteGuardOptimWrapper',
           AmpOptimWrapper: 'NonFiniteGuardAmpOptimWrapper'}


def optim_wrapper_class(type_):
    """The class an ``optim_wrapper.type`` (a name or a class) builds, or
    None when no registered wrapper has that name."""
    if inspect.isclass(type_):
        return type_
    return OPTIM_WRAPPERS.get(type_)


def guarded_optim_wrapper_type(type_='OptimWrapper'):
    """``type_`` itself when it is guarded, the guarded counterpart of
    ``OptimWrapper`` / ``AmpOptimWrapper``, else None (a wrapper class of
    someone else's, which the guard cannot be given without changing its
    class)."""
    cls = optim_wrapper_class(type_)
    if cls is None:
        return None
    if issubclass(cls, NonFiniteGuardMixin):
        return type_
    return GUARDED.get(cls)


def is_amp_optim_wrapper(type_):
    """Whether ``optim_wrapper.type`` builds an ``AmpOptimWrapper`` (or a
    subclass, such as :class:`NonFiniteGuardAmpOptimWrapper`)."""
    cls = optim_wrapper_class(type_)
    return cls is not None and issubclass(cls, AmpOptimWrapper)


def amp_optim_wrapper_type(type_='OptimWrapper'):
    """The mixed-precision wrapper type for ``type_`` (``--amp``):
    ``type_`` itself when it already is one, the guarded AMP wrapper for a
    guarded one, else mmengine's ``AmpOptimWrapper``."""
    if is_amp_optim_wrapper(type_):
        return type_
    cls = optim_wrapper_class(type_)
    if cls is not None and issubclass(cls, NonFiniteGuardMixin):
        return 'NonFiniteGuardAmpOptimWrapper'
    return 'AmpOptimWrapper'


def float32_optim_wrapper_type(type_='OptimWrapper'):
    """The float32 wrapper type for ``type_``: the guarded or plain
    ``OptimWrapper`` for a mixed-precision one, else ``type_`` itself."""
    if not is_amp_optim_wrapper(type_):
        return type_
    if issubclass(optim_wrapper_class(type_), NonFiniteGuardMixin):
        return 'NonFiniteGuardOptimWrapper'
    return 'OptimWrapper'
