"""Writing a tool's output file without ever destroying an input.

Two rules every tool that writes a file follows:

* :func:`refuse_same_file`: an output that names an input file (the same
  path, a symlink to it, a hard link of it) is refused before anything is
  read or written;
* :func:`atomic_replace`: the output is written to a temporary file in the
  output's folder and renamed over the target only once complete, so an
  interrupted or failed write leaves the old file (or no file) in place,
  never a partial one.

Plain ``os`` only (no torch, no OpenMMLab), so any layer may use it.
"""
import os
import os.path as osp

__all__ = ['SameFileError', 'refuse_same_file', 'atomic_replace',
           'temporary_name']


class SameFileError(ValueError):
    """An output path names one of the tool's input files."""


def _same(a, b):
    if osp.realpath(a) == osp.realpath(b):
        return True
    try:  # hard links: two names, one inode
        return osp.exists(a) and osp.exists(b) and osp.samefile(a, b)
    except OSError:
        return False


def refuse_same_file(src, dst, what='output', src_what='input'):
    """Raise :class:`SameFileError` when writing ``dst`` would overwrite the
    file ``src`` (equal paths, either a symlink to the other, or hard links
    of one file)."""
    if src is None or dst is None:
        return
    src, dst = os.fspath(src), os.fspath(dst)
    if _same(src, dst):
        how = ('is the same path' if osp.abspath(src) == osp.abspath(dst)
               else 'resolves to the same file (a symlink or hard link)')
        raise SameFileError(
            f'the {what} {dst!r} {how} as the {src_what} {src!r}: writing '
            f'it would destroy the {src_what}. Choose another {what} path.')


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path):
    """The temporary file :func:`atomic_replace` writes before renaming it
    to ``path``: hidden, in the same folder (a rename within one file
    system is atomic), named after the process."""
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.tmp-{os.getpid()}')


def atomic_replace(path, write_fn):
    """Call ``write_fn(tmp_path)`` to write the complete output to a
    temporary file, then flush it to disk and rename it to ``path``
    (replacing a previous file atomically); returns ``path``.

    On any error (in ``write_fn`` or while committing) the temporary file is
    removed and ``path`` is left as it was. When ``path`` is a symlink the
    link itself is replaced, never the file it points to.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write_fn(tmp)
        if not osp.isfile(tmp):
            raise RuntimeError(f'writing {path!r} produced no file')
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    return path
