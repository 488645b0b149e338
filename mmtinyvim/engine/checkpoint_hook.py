"""Checkpoints that survive a crash at any moment (:class:`SafeCheckpointHook`)
and the choice of an intact checkpoint to resume from."""
import os
import os.path as osp
import difflib
import inspect
import re
import shutil
import warnings

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..utils.checkpoint import safe_torch_load
from .atomic_io import (AtomicLocalBackend, AtomicWriteError,
                        atomic_write_text, is_own_file,
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


def _not_removing(path, folders):
    own = sorted({osp.realpath(str(folder)) for folder in folders})
    return (f'Not removing {path}: the previous best checkpoint named by the '
            'resumed training state is not a checkpoint file of this run\'s '
            f'folder ({", ".join(own)}); it is left as it is')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves survive a crash at any moment.

    Built on mmengine's public extension points only: for a local
    ``out_dir`` without ``backend_args`` the files go through the registered
    file backend ``atomic_local`` (:class:`AtomicLocalBackend`: write
    ``.NAME.tmp-PID`` in the checkpoint folder, fsync, ``os.replace`` to
    ``NAME``), whose removals are deferred; after each hook method that may
    save (``after_train_iter``, ``after_train_epoch``, ``after_val_epoch``,
    mmengine's, then this) ``last_checkpoint`` is replaced atomically and
    only then are the checkpoints beyond ``max_keep_ckpts`` (and, for
    ``save_best``, the previous best) deleted. A failed write stops training
    with :class:`CheckpointWriteError`, nothing saved before changed. A best
    checkpoint named by a resumed training state that is not a checkpoint
    file of this run's folder is forgotten in ``before_train`` (warned
    once), so nothing outside the run is ever deleted. A checkpoint whose
    weights hold NaN/inf is refused with a ``RuntimeError``. With
    ``resume=True`` and no ``load_from``, the newest intact checkpoint is
    resumed (a truncated file or a ``last_checkpoint`` naming a missing file
    is skipped with a warning). Arguments are those of ``CheckpointHook``.
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
        bound = inspect.signature(CheckpointHook.__init__).bind(
            self, *args, **kwargs)
        given = bound.arguments
        if (given.get('backend_args') is None
                and given.get('file_client_args') is None
                and '://' not in str(given.get('out_dir') or '')):
            # mmengine's own file-backend choice, for local folders: every
            # checkpoint file goes through a temporary file and a rename
            given['backend_args'] = dict(backend='atomic_local')
        super().__init__(*bound.args[1:], **bound.kwargs)

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
        """mmengine's ``before_train`` (which may rotate checkpoints), then: removals deferred (see
        :class:`AtomicLocalBackend`), and a best checkpoint named by the
        resumed training state forgotten unless it is a checkpoint file of
        this run's folder, so that a new best never deletes anything else
        (warned once)."""
        super().before_train(runner)
        if isinstance(self.file_backend, AtomicLocalBackend):
            self.file_backend.defer_removals()
        if self.save_best is not None and len(self.key_indicators) == 1:
            self.best_ckpt_path = self._own_best(runner, self.best_ckpt_path)
        elif self.save_best is not None:
            for key, path in self.best_ckpt_path_dict.items():
                self.best_ckpt_path_dict[key] = self._own_best(runner, path)

    def _folders(self, runner):
        return [self.out_dir, runner.work_dir]

    def _own_best(self, runner, path):
        if not path or is_own_file(path, self._folders(runner)):
            return path
        if osp.lexists(str(path)):
            runner.logger.warning(_not_removing(path, self._folders(runner)))
        return None

    def _commit(self, runner):
        """After mmengine's saves: ``last_checkpoint`` replaced atomically
        and on disk (mmengine writes it in place), then the deferred
        removals done."""
        saved, self._saved = getattr(self, '_saved', False), False
        # (validation alone, without before_train: no backend)
        backend = getattr(self, 'file_backend', None)
        if not isinstance(backend, AtomicLocalBackend) or \
                not is_main_process():
            return
        if saved and self.last_ckpt is not None:
            atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                              str(self.last_ckpt))
        warned = self.__dict__.setdefault('_warned', set())

        def warn_once(message):
            if message not in warned:
                warned.add(message)
                runner.logger.warning(message)

        backend.commit_removals(
            self._folders(runner),
            lambda path: warn_once(_not_removing(path, self._folders(runner))))

    def _saving(self, runner, save):
        """Run mmengine's ``save()`` (a hook method that may save); a write
        failure becomes :class:`CheckpointWriteError`."""
        try:
            save()
        except AtomicWriteError as err:
            raise CheckpointWriteError(
                _write_failure(runner, err.filename, err)) from err
        self._commit(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._saving(runner, lambda: super(
            SafeCheckpointHook, self).after_train_iter(
                runner, batch_idx, data_batch, outputs))

    def after_train_epoch(self, runner) -> None:
        self._saving(runner, lambda: super(
            SafeCheckpointHook, self).after_train_epoch(runner))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._saving(runner, lambda: super(
            SafeCheckpointHook, self).after_val_epoch(runner, metrics))

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        bad, count = nonfinite_entries(checkpoint.get('state_dict', {}))
        if count:
            raise RuntimeError(
                f'Refusing to write a checkpoint at iteration {runner.iter}: '
                f'{count} weight tensors hold NaN/inf (e.g. '
                f'{", ".join(bad)}). Training diverged; the last intact '
                f'checkpoint in {runner.work_dir} is kept.')
        self._saved = True

