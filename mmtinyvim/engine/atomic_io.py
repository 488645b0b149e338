"""Files that a reader sees whole or not at all: temporary file in the same
folder, flush, fsync, rename, fsync the folder; and the leftovers of a writer
that was killed."""
import os
import os.path as osp
import re

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


