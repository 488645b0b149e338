"""Training that cannot lose its last good checkpoint or train on NaN.

Three runner hooks, registered with mmengine's ``HOOKS`` when
:mod:`mmtinyvim` is imported and set in the ``default_hooks`` of every
shipped config (so mmdet's and mmseg's own ``tools/train.py`` use them too):

* :class:`SafeCheckpointHook` (``default_hooks.checkpoint``): mmengine's
  ``CheckpointHook`` with a crash-safe order. A checkpoint is written to a
  temporary file in its folder, flushed to disk (``fsync``) and renamed into
  place (``os.replace``); ``last_checkpoint`` is then replaced the same way;
  only after that are the outdated checkpoints (or the previous best) deleted.
  Checkpoints holding non-finite weights are refused; a write that fails (a
  full disk) stops training with :class:`CheckpointWriteError`, naming the
  free space and the checkpoint kept. On auto-resume it picks
  the newest *intact* checkpoint and warns about each broken one it skips.
* :class:`WorkDirClaimHook` (``default_hooks.work_dir_claim``): a lock file
  ``<work_dir>/.mmtinyvim_claim`` naming host, PID and start time. A second
  training in the same work_dir stops at once, naming the holder; a claim
  left by a dead process on this host is taken over with a warning.
* :class:`NonFiniteGuardHook` (``default_hooks.nonfinite_guard``): turns the
  runner's optimizer wrapper (``OptimWrapper``, ``AmpOptimWrapper`` or any
  subclass) into one that never lets a non-finite loss or gradient reach the
  weights: the step is skipped with a warning naming the iteration and the
  non-finite loss terms; ``max_consecutive_skips`` skips in a row stop
  training. fp16 loss-scaler skips are kept (the scaler's own behaviour) and
  counted in the log.
"""
import json
import os
import os.path as osp
import re
import shutil
import socket
import time
import warnings
from collections import OrderedDict, deque

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS

CLAIM_FILE = '.mmtinyvim_claim'
_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


# ----------------------------------------------------------------- files --

def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path):
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.tmp-{os.getpid()}')


def commit_file(tmp_path, path):
    """Make the complete file ``tmp_path`` appear as ``path`` atomically:
    fsync it, ``os.replace`` it, fsync the folder."""
    _fsync_file(tmp_path)
    os.replace(tmp_path, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` so that a reader sees the old or the new
    content, never a part (temporary file, flush, fsync, rename)."""
    tmp = _temp_name(path)
    try:
        with open(tmp, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(osp.dirname(osp.abspath(path)))


_TEMP_NAME = re.compile(r'^\..+\.tmp-(\d+)$')


def stale_temporary_files(folder):
    """Temporary files of :func:`commit_file` / :func:`atomic_write_text`
    in ``folder`` whose writing process (on this host) is gone."""
    if not osp.isdir(folder):
        return []
    stale = []
    for name in sorted(os.listdir(folder)):
        match = _TEMP_NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            stale.append(osp.join(folder, name))
    return stale


def checkpoint_problem(path):
    """Why ``path`` is not an intact checkpoint, or ``None`` when it is
    (every zip member present with its CRC; a legacy non-zip file must load
    through :func:`mmtinyvim.utils.safe_torch_load`)."""
    import zipfile
    if not osp.isfile(path):
        return 'missing'
    if osp.getsize(path) == 0:
        return 'empty (0 bytes)'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as err:  # noqa: BLE001 (any damage is a problem)
            return f'damaged zip archive ({err})'
        return None if bad is None else f'corrupt member {bad}'
    from mmtinyvim.utils.checkpoint import safe_torch_load
    try:
        safe_torch_load(path)
    except Exception as err:  # noqa: BLE001
        return str(err)
    return None


def checkpoint_candidates(folder):
    """``iter_*.pth`` / ``epoch_*.pth`` in ``folder``, newest first (by the
    number in the name, then modification time)."""
    if not osp.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = _CKPT_NAME.match(name)
        if match:
            path = osp.join(folder, name)
            found.append((int(match.group(1)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def newest_intact_checkpoint(work_dir, warn=None):
    """The checkpoint auto-resume should use: the one ``last_checkpoint``
    names when it is intact, else the newest intact ``iter_*.pth`` /
    ``epoch_*.pth`` in its folder or ``work_dir``. ``warn(message)`` is
    called for each broken or missing one skipped. ``None`` when there is
    none."""
    warn = warn or (lambda message: warnings.warn(message))
    named = None
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
    candidates = [named] if named else []
    folders = [work_dir]
    if named and osp.dirname(named) not in folders:
        folders.insert(0, osp.dirname(named))
    for folder in folders:
        candidates += [p for p in checkpoint_candidates(folder)
                       if p not in candidates]
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warn(f'Resume: skipping checkpoint {path}: {problem}')
    return None


def nonfinite_entries(state_dict, limit=5):
    """Names of floating-point tensors in ``state_dict`` holding NaN/inf."""
    bad = [name for name, value in state_dict.items()
           if torch.is_tensor(value) and value.is_floating_point()
           and not bool(torch.isfinite(value).all())]
    return bad[:limit], len(bad)


# ------------------------------------------------------------ checkpoints --

class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; nothing already saved changed."""


def _write_failure(runner, path, err):
    folder = osp.dirname(osp.abspath(path))
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.0f} MiB free'
    except OSError:
        free = 'free space unknown'
    try:
        with open(osp.join(runner.work_dir, 'last_checkpoint')) as f:
            kept = f.read().strip()
    except OSError:
        kept = ''
    if kept:
        state = (f'Nothing saved before was changed: the last intact '
                 f'checkpoint ({kept}) is kept and last_checkpoint still '
                 f'names it. Free space (or fix the folder), then continue '
                 f'with --resume.')
    else:
        state = (f'No checkpoint was saved in {runner.work_dir} before; '
                 f'nothing there was changed. Free space (or fix the '
                 f'folder), then start the training again.')
    return (f'Could not write the checkpoint {path}: '
            f'{err.strerror or err} ({free} in {folder}). {state}')


class _AtomicSavingRunner:
    """The runner as ``CheckpointHook`` sees it, with ``save_checkpoint``
    writing through a temporary file and a rename."""

    def __init__(self, runner, hook):
        self.__dict__['_runner'] = runner
        self.__dict__['_hook'] = hook

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def __setattr__(self, name, value):
        setattr(self._runner, name, value)

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self._hook._write_checkpoint(self._runner, out_dir, filename,
                                     *args, **kwargs)


class _DeferredRemovals:
    """``file_backend`` proxy that records removals instead of doing them."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path):
        self.pending.append(('remove', path))

    def rmtree(self, path):
        self.pending.append(('rmtree', path))

    def flush(self):
        for method, path in self.pending:
            if method == 'rmtree' or self._backend.exists(path):
                getattr(self._backend, method)(path)
        self.pending = []


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves survive a crash at any moment.

    Order of a save: write ``.NAME.tmp-PID`` in the checkpoint folder, fsync,
    ``os.replace`` to ``NAME``; replace ``last_checkpoint`` atomically; only
    then delete the checkpoints beyond ``max_keep_ckpts`` (and, for
    ``save_best``, the previous best). A checkpoint whose weights hold
    NaN/inf is refused with a ``RuntimeError``. With ``resume=True`` and no
    ``load_from``, the newest intact checkpoint is resumed (a truncated file
    or a ``last_checkpoint`` naming a missing file is skipped with a
    warning). Arguments are those of ``CheckpointHook``.
    """

    def before_run(self, runner) -> None:
        super().before_run(runner)
        if is_main_process():
            for path in stale_temporary_files(runner.work_dir):
                os.remove(path)
                runner.logger.warning(
                    f'Removed {path}: a partial checkpoint of a killed run')
        if not (getattr(runner, '_resume', False)
                and getattr(runner, '_load_from', None) is None):
            return
        record = osp.join(runner.work_dir, 'last_checkpoint')
        named = None
        if osp.isfile(record):
            with open(record) as f:
                named = f.read().strip() or None
        chosen = newest_intact_checkpoint(
            runner.work_dir, warn=lambda m: runner.logger.warning(m))
        if chosen is not None and chosen != named:
            runner.logger.warning(
                f'Resume: last_checkpoint names {named or "nothing"}; '
                f'resuming from the newest intact checkpoint {chosen}')
            runner._load_from = chosen  # load_or_resume() follows it
        elif chosen is None and named is not None:
            raise RuntimeError(
                f'Resume: no intact checkpoint in {runner.work_dir} '
                f'(last_checkpoint names {named}); start without --resume '
                'or give a checkpoint with --resume PATH')

    def before_train(self, runner) -> None:
        """mmengine's ``CheckpointHook.before_train`` without its unused
        ``FileClient``.

        mmengine 0.10.7 builds ``self.file_client = FileClient.infer_client(
        ...)`` even when ``file_client_args`` is None, only "to avoid breaking
        backward compatibility" (nothing reads it then); building it logs two
        deprecation warnings ("FileClient" and "HardDiskBackend") that the
        user cannot act on. Without ``file_client_args`` (every shipped
        config) this does the rest of mmengine's method as it is, with
        ``get_file_backend`` only; with ``file_client_args`` (deprecated, the
        user's own choice) mmengine's method runs unchanged.
        """
        if self.file_client_args is not None:
            return super().before_train(runner)
        if self.out_dir is None:
            self.out_dir = runner.work_dir
        self.file_client = None  # mmengine's attribute, unused without args
        self.file_backend = get_file_backend(
            self.out_dir, backend_args=self.backend_args)
        # from here on mmengine 0.10.7's before_train, unchanged
        if self.out_dir != runner.work_dir:
            basename = osp.basename(runner.work_dir.rstrip(osp.sep))
            self.out_dir = self.file_backend.join_path(self.out_dir, basename)
        runner.logger.info(f'Checkpoints will be saved to {self.out_dir}.')
        info = runner.message_hub.runtime_info
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                self.best_ckpt_path = (runner.message_hub.get_info(
                    'best_ckpt') if 'best_ckpt' in info else None)
            else:
                for key_indicator in self.key_indicators:
                    name = f'best_ckpt_{key_indicator}'
                    self.best_ckpt_path_dict[key_indicator] = (
                        runner.message_hub.get_info(name)
                        if name in info else None)
        if self.max_keep_ckpts > 0:
            keep_ckpt_ids = []
            if 'keep_ckpt_ids' in info:
                keep_ckpt_ids = runner.message_hub.get_info('keep_ckpt_ids')
            while len(keep_ckpt_ids) > self.max_keep_ckpts:
                step = keep_ckpt_ids.pop(0)
                if is_main_process():
                    path = self.file_backend.join_path(
                        self.out_dir, self.filename_tmpl.format(step))
                    if self.file_backend.isfile(path):
                        self.file_backend.remove(path)
                    elif self.file_backend.isdir(path):
                        self.file_backend.rmtree(path)
            self.keep_ckpt_ids = deque(keep_ckpt_ids, self.max_keep_ckpts)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        bad, count = nonfinite_entries(checkpoint.get('state_dict', {}))
        if count:
            raise RuntimeError(
                f'Refusing to write a checkpoint at iteration {runner.iter}: '
                f'{count} weight tensors hold NaN/inf (e.g. '
                f'{", ".join(bad)}). Training diverged; the last intact '
                f'checkpoint in {runner.work_dir} is kept.')

    def _is_local(self):
        backend = getattr(self, 'file_backend', None)
        backend = getattr(backend, '_backend', backend)  # _DeferredRemovals
        return isinstance(backend, LocalBackend)

    def _write_checkpoint(self, runner, out_dir, filename, *args, **kwargs):
        if not self._is_local():
            runner.save_checkpoint(out_dir, filename, *args, **kwargs)
            return
        if not is_main_process():  # runner.save_checkpoint is master-only
            runner.save_checkpoint(out_dir, filename, *args, **kwargs)
            return
        final = osp.join(out_dir, filename)
        tmp_name = osp.basename(_temp_name(final))
        try:
            runner.save_checkpoint(out_dir, tmp_name, *args, **kwargs)
            commit_file(osp.join(out_dir, tmp_name), final)
        except OSError as err:  # a full disk, a quota, a lost mount
            raise CheckpointWriteError(
                _write_failure(runner, final, err)) from err
        finally:
            if osp.exists(osp.join(out_dir, tmp_name)):
                os.remove(osp.join(out_dir, tmp_name))

    def _save_checkpoint_with_step(self, runner, step, meta):
        runner = getattr(runner, '_runner', runner)
        outdated = []
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._write_checkpoint(
            runner, self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        for old in outdated:  # only now that the new one is complete
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best before writing the new one:
        # its removals are recorded and done once the new best is written
        if not self.save_best:
            return
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(_AtomicSavingRunner(runner, self),
                                          metrics)
        finally:
            self.file_backend = backend
        deferred.flush()


# --------------------------------------------------------- work_dir claim --

def _process_start(pid):
    """Start time of ``pid`` (clock ticks since boot) from /proc, or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_claim(claim):
    return (f"PID {claim.get('pid')} on host {claim.get('host')} "
            f"(started {claim.get('started')})")


class WorkDirClaimedError(RuntimeError):
    """Another live training holds the work_dir."""


def claim_work_dir(work_dir, warn=None):
    """Take the claim ``<work_dir>/.mmtinyvim_claim`` for this process and
    return its path. Raises :class:`WorkDirClaimedError` naming the holder
    when a live process (or one on another host) holds it; a claim of a dead
    process on this host is taken over, calling ``warn(message)``."""
    warn = warn or (lambda message: warnings.warn(message))
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, CLAIM_FILE)
    pid = os.getpid()
    mine = dict(host=socket.gethostname(), pid=pid,
                started=time.strftime('%Y-%m-%d %H:%M:%S'),
                proc_start=_process_start(pid))
    text = json.dumps(mine)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, 'w') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            return path
        try:
            with open(path) as f:
                held = json.load(f)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        except (OSError, ValueError):
            held = {}
        if held.get('host') == mine['host'] and held.get('pid') == pid:
            atomic_write_text(path, text)  # a claim of this very process
            return path
        stale = (held.get('host') == mine['host']
                 and isinstance(held.get('pid'), int)
                 and (not _pid_alive(held['pid'])
                      or (held.get('proc_start') is not None
                          and _process_start(held['pid'])
                          != held['proc_start'])))
        if not held:
            stale = True
            warn(f'{path} is unreadable; taking the claim on {work_dir}')
        if not stale:
            raise WorkDirClaimedError(
                f'work_dir {work_dir} is in use by another training: '
                f'{describe_claim(held)} holds {path}. Use another '
                '--work-dir, or stop that process; if it is gone (e.g. it '
                'ran on another host), delete the file.')
        if held:
            warn(f'Taking over the claim on {work_dir} left by '
                 f'{describe_claim(held)}, which is no longer running')
        atomic_write_text(path, text)
        with open(path) as f:  # two takers: the last rename wins
            if json.load(f).get('pid') == pid:
                return path
    raise WorkDirClaimedError(f'Could not claim work_dir {work_dir}')


def release_work_dir(path):
    """Remove the claim at ``path`` if this process holds it."""
    try:
        with open(path) as f:
            held = json.load(f)
    except (OSError, ValueError):
        return
    if (held.get('pid') == os.getpid()
            and held.get('host') == socket.gethostname()):
        os.remove(path)


@HOOKS.register_module()
class WorkDirClaimHook(Hook):
    """Claim the work_dir for one training at a time (see
    :func:`claim_work_dir`); released after the run, or when the process
    exits after an error."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self._path = None
        self._trained = False

    def before_run(self, runner) -> None:
        # runner.val()/test() after runner.train() run before_run again
        if not is_main_process() or self._path is not None or self._trained:
            return
        # only training claims: runner.train() builds its loop before
        # before_run (runner.test()/val() leave the train_cfg dict there)
        from mmengine.runner import BaseLoop
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return
        self._path = claim_work_dir(
            runner.work_dir, warn=lambda m: runner.logger.warning(m))
        import atexit
        atexit.register(release_work_dir, self._path)

    def after_run(self, runner) -> None:
        if self._path is not None:
            release_work_dir(self._path)
            self._path = None
            self._trained = True


# ------------------------------------------------------------ non-finite --

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


def add_safety_hooks(cfg):
    """Make ``cfg`` train with the safety hooks, as the shipped configs do:
    ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
    ``SafeCheckpointHook`` and the work_dir claim and the non-finite guard
    are added where missing (``tools/train.py`` calls this for any
    config)."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = {}
    checkpoint = hooks.get('checkpoint')
    if checkpoint is None:
        hooks['checkpoint'] = dict(type='SafeCheckpointHook', interval=1)
    elif isinstance(checkpoint, dict) and checkpoint.get(
            'type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint['type'] = 'SafeCheckpointHook'
    hooks.setdefault('work_dir_claim', dict(type='WorkDirClaimHook'))
    hooks.setdefault('nonfinite_guard', dict(type='NonFiniteGuardHook'))
    return cfg


# ------------------------------------------------------------ teardown --

def _worker_iterators(runner):
    """The live multi-process DataLoader iterators of the runner's loops."""
    found = []
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        if loop is None or isinstance(loop, dict):
            continue
        for holder in (getattr(loop, 'dataloader_iterator', None),
                       getattr(loop, 'dataloader', None)):
            iterator = getattr(holder, '_iterator', None)
            if iterator is not None and hasattr(iterator,
                                                '_shutdown_workers'):
                found.append((holder, iterator))
    return found


def teardown_distributed(runner=None, barrier=True):
    """End a run in order: join the DataLoader worker processes, wait for
    every rank (``barrier``, only after a successful run: after an error the
    other ranks may never arrive) and destroy the process group, so that no
    communication thread is left running when the interpreter exits (gloo's
    threads otherwise abort the process: ``terminate called without an
    active exception``). Safe to call without a runner or process group."""
    if runner is not None:
        for holder, iterator in _worker_iterators(runner):
            iterator._shutdown_workers()
            try:
                holder._iterator = None
            except AttributeError:
                pass
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()
