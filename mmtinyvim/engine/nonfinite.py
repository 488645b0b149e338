"""No optimizer step on a non-finite loss or gradient
(:class:`NonFiniteGuardHook`)."""
import warnings
from collections import OrderedDict

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS
from mmengine.hooks import Hook


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss or
    gradient."""


class _NonFiniteGuard:
    """Mixed into the runner's optimizer wrapper class by
    :class:`NonFiniteGuardHook`; see there."""

    def _guard_init(self, max_consecutive_skips, logger):
        self._guard_max = max_consecutive_skips
        self._guard_logger = logger
        self._guard_iter = 0
        self._guard_terms = {}
        self._guard_window_bad = []
        self._guard_consecutive = 0
        self.skipped_nonfinite = 0
        self.skipped_by_scaler = 0

    def _guard_warn(self, message):
        if self._guard_logger is not None:
            self._guard_logger.warning(message)
        else:
            warnings.warn(message)

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

    def _agree(self, flag, device):
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

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        if step_kwargs is None:
            step_kwargs = {}
        if zero_kwargs is None:
            zero_kwargs = {}
        loss_finite = bool(torch.isfinite(loss.detach()).all())
        if not loss_finite:
            terms = [name for name, value in self._guard_terms.items()
                     if not bool(torch.isfinite(value).all())]
            self._guard_window_bad.append(
                (self._guard_iter, terms or ['loss']))
        # backward also when the loss is not finite: distributed ranks
        # must take part in the gradient all-reduce
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        amp = hasattr(self, 'loss_scaler')
        bad = bool(self._guard_window_bad)
        grads_bad = not amp and not self._grads_finite()
        if self._agree(bad or grads_bad, loss.device):
            self.zero_grad(**zero_kwargs)
            self._record_skip(grads_bad)
            return
        scale = self.loss_scaler.get_scale() if amp else None
        self.step(**step_kwargs)
        self.zero_grad(**zero_kwargs)
        self._guard_consecutive = 0
        if amp and self.loss_scaler.get_scale() < scale:
            self.skipped_by_scaler += 1
            self._guard_warn(
                f'Iteration {self._guard_iter}: fp16 loss scaler skipped the '
                f'step (scaled gradients overflowed; scale {scale:g} -> '
                f'{self.loss_scaler.get_scale():g}); '
                f'{self.skipped_by_scaler} such steps skipped so far')

    def _record_skip(self, grads_bad):
        self.skipped_nonfinite += 1
        self._guard_consecutive += 1
        if self._guard_window_bad:
            what = '; '.join(
                f'iteration {it}: non-finite {", ".join(terms)}'
                for it, terms in self._guard_window_bad)
        else:
            what = f'iteration {self._guard_iter}: non-finite gradients'
        self._guard_window_bad = []
        message = (f'Skipped the optimizer step ({what}); the weights are '
                   f'unchanged. {self._guard_consecutive} consecutive, '
                   f'{self.skipped_nonfinite} in all.')
        self._guard_warn(message)
        if self._guard_max and self._guard_consecutive >= self._guard_max:
            raise NonFiniteLossError(
                f'Training stopped: {self._guard_consecutive} consecutive '
                f'optimizer steps had a non-finite loss or gradient (last '
                f'{what}). Lower the learning rate, enable gradient '
                'clipping, or check the data; the checkpoints written so '
                'far hold finite weights.')


_GUARDED_CLASSES = {}


def guard_optim_wrapper(wrapper, max_consecutive_skips=10, logger=None):
    """Give ``wrapper`` (an ``OptimWrapper`` or subclass, or each wrapper of
    an ``OptimWrapperDict``) the non-finite guard, in place."""
    if isinstance(wrapper, OptimWrapperDict):
        return [guard_optim_wrapper(w, max_consecutive_skips, logger)
                for w in wrapper.values()]
    if not isinstance(wrapper, OptimWrapper):
        raise TypeError('NonFiniteGuardHook needs an mmengine OptimWrapper, '
                        f'got {type(wrapper).__name__}')
    cls = type(wrapper)
    if not issubclass(cls, _NonFiniteGuard):
        if cls not in _GUARDED_CLASSES:
            _GUARDED_CLASSES[cls] = type(f'NonFiniteGuarded{cls.__name__}',
                                         (_NonFiniteGuard, cls), {})
        wrapper.__class__ = _GUARDED_CLASSES[cls]
    wrapper._guard_init(max_consecutive_skips, logger)
    return wrapper


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Keep non-finite losses and gradients away from the weights.

    Before training, the runner's optimizer wrapper gets a guarded
    ``update_params``: when the loss (or, without fp16 loss scaling, any
    gradient) is NaN/inf, ``optimizer.step()`` is not called, the gradients
    are cleared and a warning names the iteration and the non-finite loss
    terms. ``max_consecutive_skips`` skipped steps in a row (0: never) stop
    training with :class:`NonFiniteLossError`. Works with gradient clipping
    and ``accumulative_counts`` (a non-finite loss anywhere in an
    accumulation window skips the window's step). With ``AmpOptimWrapper``
    the loss scaler's own skips are kept, counted and logged.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_consecutive_skips: int = 10):
        self.max_consecutive_skips = max_consecutive_skips
        self._wrappers = []

    def before_train(self, runner) -> None:
        wrappers = guard_optim_wrapper(
            runner.optim_wrapper, self.max_consecutive_skips, runner.logger)
        self._wrappers = wrappers if isinstance(wrappers, list) else [
            wrappers]
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if getattr(model, '_mmtinyvim_guarded', False) or not hasattr(
                model, 'parse_losses'):
            return
        parse_losses = model.parse_losses
        hook = self

        def recording_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            terms = OrderedDict(
                (name, value.detach()) for name, value in log_vars.items()
                if name != 'loss' and torch.is_tensor(value))
            for wrapper in hook._wrappers:
                wrapper._guard_terms = terms
            return loss, log_vars

        model.parse_losses = recording_parse_losses
        model._mmtinyvim_guarded = True

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        for wrapper in self._wrappers:
            wrapper._guard_iter = runner.iter + 1
            wrapper._guard_terms = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
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


