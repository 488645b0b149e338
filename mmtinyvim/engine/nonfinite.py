"""What a skipped non-finite step was (:class:`NonFiniteGuardHook`): the
guard itself is the optimizer wrapper's
(:mod:`mmtinyvim.engine.optim_wrappers`)."""
import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS

from .optim_wrappers import (GUARDED, NONFINITE_REASONS,
                             NonFiniteGuardMixin,
                             NonFiniteLossError, SkipReport)

__all__ = ['NonFiniteGuardHook', 'NonFiniteLossError']

# images named in one message at most
_MAX_NAMED = 4


def _wrappers(optim_wrapper):
    if isinstance(optim_wrapper, OptimWrapperDict):
        return list(optim_wrapper.values())
    return [optim_wrapper]


def _unguarded_message(wrapper):
    cls = type(wrapper)
    counterpart = next((name for base, name in GUARDED.items()
                        if cls is base), None)
    fix = (f"optim_wrapper.type='{counterpart}'" if counterpart else
           "optim_wrapper.type='NonFiniteGuardOptimWrapper' (mixed "
           "precision: 'NonFiniteGuardAmpOptimWrapper')")
    return (f'NonFiniteGuardHook: the optimizer wrapper is {cls.__name__}, '
            'which takes the optimizer step also on a NaN/inf loss; the hook '
            'only reports what the guarded wrappers NonFiniteGuardOptimWrapper '
            'and NonFiniteGuardAmpOptimWrapper skip. Set '
            f'{fix}, or remove default_hooks.nonfinite_guard to train without '
            'the guard.')


def _image_path(data_batch, index):
    samples = data_batch.get('data_samples') if isinstance(
        data_batch, dict) else None
    if isinstance(samples, (list, tuple)) and index < len(samples):
        metainfo = getattr(samples[index], 'metainfo', None) or {}
        name = metainfo.get('img_path') or metainfo.get('filename')
        return str(name) if name else None
    return None


def _sample_names(data_batch, indices):
    """``img_path`` of the batch's data samples at ``indices`` (or
    ``sample i of the batch`` where a sample has none), a few at most."""
    names = [_image_path(data_batch, index) or f'sample {index} of the batch'
             for index in indices]
    shown = ', '.join(names[:_MAX_NAMED])
    if len(names) > _MAX_NAMED:
        shown += f' and {len(names) - _MAX_NAMED} more'
    return shown


def _batch_size(data_batch):
    inputs = data_batch.get('inputs') if isinstance(data_batch,
                                                    dict) else None
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    if torch.is_tensor(inputs) and inputs.dim():
        return len(inputs)
    samples = data_batch.get('data_samples') if isinstance(
        data_batch, dict) else None
    return len(samples) if isinstance(samples, (list, tuple)) else 0


def nonfinite_samples(inputs):
    """Indices of the samples of a batch's ``inputs`` (a tensor with the
    batch first, or a list of per-sample tensors) whose floating-point
    values hold NaN/inf; integer images (uint8) cannot."""
    if torch.is_tensor(inputs):
        if not inputs.is_floating_point() or not inputs.dim():
            return []
        if bool(torch.isfinite(inputs).all()):  # one sync for a clean batch
            return []
        finite = torch.isfinite(inputs.reshape(len(inputs), -1)).all(1)
        return [i for i, ok in enumerate(finite.tolist()) if not ok]
    if isinstance(inputs, (list, tuple)):
        floats = [(i, t) for i, t in enumerate(inputs)
                  if torch.is_tensor(t) and t.is_floating_point()]
        if not floats:
            return []
        finite = torch.stack([torch.isfinite(t).all() for _, t in floats])
        return [i for (i, _), ok in zip(floats, finite.tolist()) if not ok]
    return []


def _make_finite(inputs, indices):
    # a sample of a batch tensor is a view of it: changed in place either way
    for index in indices:
        inputs[index].nan_to_num_(0.0, 0.0, 0.0)


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Say what a skipped non-finite step was, and stop non-finite inputs.

    Needs a guarded optimizer wrapper (``optim_wrapper.type`` of
    ``NonFiniteGuardOptimWrapper`` or ``NonFiniteGuardAmpOptimWrapper``, as
    in the shipped configs; another wrapper is refused before the first
    iteration). Before each iteration a batch whose floating-point
    ``inputs`` hold NaN/inf (float pipelines) has those values set to 0 (the
    forward and backward still run: distributed ranks take part in the
    gradient all-reduce) and its step skipped. After each iteration the
    wrapper's skips are logged as warnings naming the iteration, the
    non-finite loss terms (from the step's ``log_vars``) and the batch's
    images (``img_path`` of its data samples); the wrapper's
    ``max_consecutive_skips`` consecutive skips stop training with
    :class:`NonFiniteLossError`. The counts go to the message hub
    (``skipped_nonfinite_steps``, ``amp_skipped_steps``).
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_consecutive_skips=None):
        if max_consecutive_skips is not None:
            raise TypeError(
                'NonFiniteGuardHook: max_consecutive_skips is an argument of '
                'the optimizer wrapper: optim_wrapper=dict(type='
                "'NonFiniteGuardOptimWrapper', max_consecutive_skips="
                f'{max_consecutive_skips!r}, ...) (or '
                "'NonFiniteGuardAmpOptimWrapper'); the hook takes none")
        self._wrappers = []
        self._seen = {}  # iteration -> what was non-finite, in words

    def before_train(self, runner) -> None:
        wrappers = _wrappers(runner.optim_wrapper)
        for wrapper in wrappers:
            if not isinstance(wrapper, NonFiniteGuardMixin):
                raise TypeError(_unguarded_message(wrapper))
        for wrapper in wrappers:
            wrapper.collect_reports()
        self._wrappers = wrappers
        self._seen = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        inputs = data_batch.get('inputs') if isinstance(data_batch,
                                                        dict) else None
        bad = nonfinite_samples(inputs)
        if not bad:
            return
        _make_finite(inputs, bad)
        for wrapper in self._wrappers:
            wrapper.mark_nonfinite_inputs()
        self._seen[runner.iter + 1] = (
            f'NaN/inf in the inputs of {_sample_names(data_batch, bad)}')

    @staticmethod
    def _describe(reason, outputs, data_batch):
        if reason == 'loss':
            terms = [name for name, value in (outputs or {}).items()
                     if name != 'loss' and torch.is_tensor(value)
                     and not bool(torch.isfinite(value).all())]
            what = f'non-finite {", ".join(terms or ["loss"])}'
        else:
            what = NONFINITE_REASONS[reason]
        indices = range(_batch_size(data_batch))
        if any(_image_path(data_batch, index) for index in indices):
            what += f' in the batch of {_sample_names(data_batch, indices)}'
        return what

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        iteration = runner.iter + 1
        reports = []
        for wrapper in self._wrappers:
            reports += [(wrapper, report) for report in wrapper.reports]
            wrapper.reports.clear()
        flagged = {it: reason for wrapper in self._wrappers
                   for it, reason in wrapper.pending_nonfinite}
        flagged.update((it, reason) for _, report in reports
                       if isinstance(report, SkipReport)
                       for it, reason in report.bad)
        if flagged.get(iteration) in ('loss', 'buffers') and \
                iteration not in self._seen:
            self._seen[iteration] = self._describe(
                flagged[iteration], outputs, data_batch)

        def describe(it, reason):
            return self._seen.get(it)

        for wrapper, report in reports:
            runner.logger.warning(report.message(describe))
            if wrapper.limit_reached(report):
                raise NonFiniteLossError(report.limit_message(describe))
        if any(wrapper.should_update() for wrapper in self._wrappers):
            self._seen = {}  # the accumulation window is over
        skipped = sum(w.skipped_nonfinite for w in self._wrappers)
        by_scaler = sum(w.skipped_by_scaler for w in self._wrappers)
        runner.message_hub.update_info('skipped_nonfinite_steps', skipped)
        if by_scaler:
            runner.message_hub.update_info('amp_skipped_steps', by_scaler)

    def after_train(self, runner) -> None:
        skipped = sum(w.skipped_nonfinite for w in self._wrappers)
        by_scaler = sum(w.skipped_by_scaler for w in self._wrappers)
        if skipped or by_scaler:
            runner.logger.warning(
                f'Training skipped {skipped} optimizer steps for non-finite '
                f'losses/gradients and the fp16 loss scaler skipped '
                f'{by_scaler}')
