"""Atomic writes: a reader sees the old file (or directory) or the new one, never a mixture.

Every file tfvrec writes for others to read — configs, run records, metrics, feature sets,
data sets, exports, reports — goes through here: the content is written beside its final
path under a hidden temporary name, flushed and fsynced, then renamed over the final path
(``os.replace`` is atomic on POSIX within one file system), and the directory is fsynced so
the rename survives a power cut. A kill at any moment leaves at most a hidden ``.tmp``
entry, which the next writer of the same path ignores.
"""
import contextlib
import json
import os
import shutil
import tempfile

import yaml


def fsync_path(path):
    """fsync a file or directory by path (the rename of an entry is durable once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def written_file(path, suffix=""):
    """Yields a temporary path beside ``path`` to write to; on success it replaces ``path``.

    For writers that take a path (``np.savez``, ``tf.train.Checkpoint.write``): ``suffix`` keeps
    the extension some of them insist on (``np.savez`` appends ``.npz`` to a name without it).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_path(directory)


def write_bytes(path, data):
    with written_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, payload, indent=1):
    """JSON, strict (NaN and infinities are refused: write ``None`` for a missing figure)."""
    write_text(path, json.dumps(payload, indent=indent, allow_nan=False) + "\n")


def write_yaml(path, payload):
    write_text(path, yaml.safe_dump(payload, sort_keys=False))


@contextlib.contextmanager
def written_directory(path, replace=False):
    """Yields a temporary directory beside ``path`` to fill; on success it becomes ``path``.

    An existing ``path`` is refused (``FileExistsError``) unless ``replace``, in which case it is
    swapped out and removed only once the new one is in place. The caller decides whether an
    existing directory may be replaced.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; another user (a server) may need to read it
        old = None
        if os.path.lexists(path):
            if not replace:
                raise FileExistsError(path)
            old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(path)}-", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
        os.rename(tmp, path)
        fsync_path(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
