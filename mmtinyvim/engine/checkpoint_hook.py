"""Checkpoints that survive a crash at any moment (:class:`SafeCheckpointHook`)
and the choice of an intact checkpoint to resume from."""
import os
import os.path as osp
import difflib
import inspect
import re
import shutil
import warnings
from collections import deque

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..utils.checkpoint import safe_torch_load
from ..utils.files import temporary_name
from .atomic_io import (atomic_write_text, commit_file,
                        stale_temporary_files)

_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


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

    def flush(self, folders, warn):
        """Do the recorded removals of checkpoint files directly inside one
        of ``folders`` (this run's checkpoint folder and work_dir). A path
        from elsewhere (a resumed checkpoint's hook state names the previous
        best) or a directory is left as it is, with ``warn(message)``: a
        file named by a checkpoint must never make training delete data
        outside its own run."""
        own = {osp.realpath(folder) for folder in folders}
        for _, path in self.pending:
            path = str(path)
            inside = osp.realpath(osp.dirname(osp.abspath(path))) in own
            if inside and osp.isfile(path) and not osp.islink(path):
                self._backend.remove(path)
            elif osp.lexists(path):
                warn(f'Not removing {path}: the previous best checkpoint '
                     'named by the resumed training state is not a '
                     'checkpoint file of this run\'s folder '
                     f'({", ".join(sorted(own))}); it is left as it is')
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

    def __init__(self, *args, **kwargs):
        # mmengine passes unknown keyword arguments on to
        # Runner.save_checkpoint, which fails with a TypeError at the first
        # save; an argument that neither takes is refused here instead
        valid = [name for name in inspect.signature(
            CheckpointHook.__init__).parameters
            if name not in ('self', 'kwargs')]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            hints = [f'{name!r} (did you mean '
                     f'{", ".join(map(repr, close))}?)' if close else
                     repr(name) for name in unknown
                     for close in [difflib.get_close_matches(name, valid)]]
            raise TypeError(
                f'SafeCheckpointHook: unknown argument(s) {", ".join(hints)}; '
                f'valid arguments: {", ".join(valid)}')
        super().__init__(*args, **kwargs)

    def before_run(self, runner) -> None:
        super().before_run(runner)
        # mmengine's Runner has no public accessor for resume / load_from;
        # hooks' before_run runs before Runner.load_or_resume reads them
        load_from = getattr(runner, '_load_from', None)
        if (getattr(runner, '_resume', False) and load_from is not None
                and '://' not in str(load_from)
                and not osp.isfile(load_from)):
            raise FileNotFoundError(
                f'--resume {load_from}: no such checkpoint file. Give an '
                'existing checkpoint, or --resume without a path to resume '
                f'from the newest one in {runner.work_dir}')
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
        elif chosen is None and named is None:
            runner.logger.warning(
                f'Resume: no checkpoint in {runner.work_dir}; training '
                'starts from scratch (iteration 0)')
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
        tmp_name = osp.basename(temporary_name(final))
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
        folders = [self.out_dir, runner.work_dir]
        warned = self.__dict__.setdefault('_warned_foreign', set())

        def warn_once(message):
            if message not in warned:
                warned.add(message)
                runner.logger.warning(message)

        deferred.flush(folders, warn_once)


