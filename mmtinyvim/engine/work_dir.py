"""One training per work_dir: the claim file and :class:`WorkDirClaimHook`."""
import json
import os
import os.path as osp
import re
import socket
import time
import warnings

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .atomic_io import _pid_alive, _process_start, atomic_write_text

CLAIM_FILE = '.mmtinyvim_claim'
_EARLIER_CHECKPOINT = re.compile(r'^(?:iter_\d+|epoch_\d+|best_.+)\.pth$')


class WorkDirHasCheckpointsError(RuntimeError):
    """A new (not resumed) training would overwrite an earlier run's
    checkpoints."""


def earlier_checkpoints(work_dir):
    """The ``iter_*.pth`` / ``epoch_*.pth`` / ``best_*.pth`` files of an
    earlier run in ``work_dir``, sorted."""
    if not osp.isdir(work_dir):
        return []
    return sorted(name for name in os.listdir(work_dir)
                  if _EARLIER_CHECKPOINT.match(name))


def refuse_earlier_checkpoints(work_dir):
    """Policy: a training that does not resume never writes into a
    work_dir holding an earlier run's checkpoints (a cluster user's rerun
    must not overwrite them); refused before anything is trained."""
    found = earlier_checkpoints(work_dir)
    if found:
        shown = ', '.join(found[:8]) + (
            f', … (+{len(found) - 8} more)' if len(found) > 8 else '')
        raise WorkDirHasCheckpointsError(
            f'work_dir {work_dir} holds checkpoints of an earlier run '
            f'({shown}); a new training would overwrite them. Continue that '
            'run with --resume, train into another --work-dir, or move '
            'those files away first.')


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
        # mmengine's Runner has no public accessor for resume; hooks'
        # before_run runs before Runner.load_or_resume
        if not getattr(runner, '_resume', False):
            try:
                refuse_earlier_checkpoints(runner.work_dir)
            except WorkDirHasCheckpointsError:
                release_work_dir(self._path)
                self._path = None
                raise
        import atexit
        atexit.register(release_work_dir, self._path)

    def after_run(self, runner) -> None:
        if self._path is not None:
            release_work_dir(self._path)
            self._path = None
            self._trained = True


