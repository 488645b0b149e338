"""Files that a reader sees whole or not at all: temporary file in the same
folder, flush, fsync, rename, fsync the folder (also as mmengine's file
backend ``atomic_local``, :class:`AtomicLocalBackend`); and the leftovers of
a writer that was killed."""
import os
import os.path as osp
import re

from mmengine.fileio import LocalBackend, register_backend

# one temporary-name rule and folder fsync for every writer of the package
# (tools' outputs too), so that stale_temporary_files finds all leftovers
from ..utils.files import _fsync_dir, temporary_name


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp_path, path):
    """Make the complete file ``tmp_path`` appear as ``path`` atomically:
    fsync it, ``os.replace`` it, fsync the folder."""
    _fsync_file(tmp_path)
    os.replace(tmp_path, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` so that a reader sees the old or the new
    content, never a part (temporary file, flush, fsync, rename)."""
    tmp = temporary_name(path)
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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



def _process_start(pid):
    """Start time of ``pid`` (clock ticks since boot) from /proc, or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class AtomicWriteError(OSError):
    """A write of :class:`AtomicLocalBackend` failed; ``filename`` is the
    file it was writing, which is as it was before."""


def is_own_file(path, folders):
    """Whether ``path`` is a regular file (not a link, not a directory)
    directly inside one of ``folders``."""
    path = str(path)
    own = {osp.realpath(str(folder)) for folder in folders}
    return (osp.realpath(osp.dirname(osp.abspath(path))) in own
            and osp.isfile(path) and not osp.islink(path))


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` write the
    whole file or nothing: a temporary file in the same folder
    (``.NAME.tmp-PID``), fsync, rename, fsync the folder. A failed write
    raises :class:`AtomicWriteError` (an ``OSError``) and leaves no
    temporary file. Chosen with ``backend_args=dict(backend='atomic_local')``
    (``SafeCheckpointHook`` does for a local ``out_dir``).

    After :meth:`defer_removals`, ``remove`` / ``rmtree`` only record the
    path; :meth:`commit_removals` does them once what replaces the files is
    written."""

    def __init__(self):
        super().__init__()
        self.pending = None

    def _atomic(self, filepath, write):
        tmp = temporary_name(str(filepath))
        try:
            write(tmp)
            commit_file(tmp, str(filepath))
        except OSError as err:  # a full disk, a quota, a lost mount
            raise AtomicWriteError(err.errno, err.strerror,
                                   str(filepath)) from err
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def put(self, obj, filepath) -> None:
        self._atomic(filepath, lambda tmp: LocalBackend.put(self, obj, tmp))

    def put_text(self, obj, filepath, encoding='utf-8') -> None:
        self._atomic(filepath, lambda tmp: LocalBackend.put_text(
            self, obj, tmp, encoding))

    def defer_removals(self):
        if self.pending is None:
            self.pending = []

    def remove(self, filepath) -> None:
        if self.pending is None:
            return super().remove(filepath)
        self.pending.append(filepath)

    def rmtree(self, dir_path) -> None:
        if self.pending is None:
            return super().rmtree(dir_path)
        self.pending.append(dir_path)

    def commit_removals(self, folders, refused):
        """Do the recorded removals of regular files directly inside one of
        ``folders``; any other recorded path (a directory, a link, a file
        elsewhere) is left as it is and given to ``refused(path)``."""
        pending, self.pending = self.pending or [], (
            [] if self.pending is not None else None)
        for path in pending:
            if is_own_file(path, folders):
                super().remove(path)
            elif osp.lexists(str(path)):
                refused(path)

