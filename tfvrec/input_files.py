"""Opening the files a user hands in: regular files only, bounded in size, never blocking.

Every data table, feature archive, config and manifest tfvrec reads comes from a user, and a
path may name anything: a FIFO or a device (``/dev/zero``, a named pipe nobody writes: a plain
``open`` or ``read`` blocks or never ends), a directory, or a file far larger than anything
tfvrec can hold. `open_input` opens without blocking (``O_NONBLOCK``), then checks the *opened*
file (``fstat``, so a file swapped in after a check is caught too): it must be a regular file of
at most `max_input_bytes` bytes. The refusal is one error naming the file and what was expected.

The bound is ``TFVREC_MAX_INPUT_BYTES`` (bytes; default 16 GiB, a data set larger than the
machine's memory) for data files; small formats pass their own tighter bound (configs:
`tfvrec.safe_yaml.MAX_YAML_BYTES`). TensorFlow-free.
"""
import json
import os
import stat

from tfvrec.errors import DataError
from tfvrec.errors import ConfigError

DEFAULT_MAX_INPUT_BYTES = 16 * 2 ** 30
MAX_JSON_BYTES = 64 * 2 ** 20  # manifests and records tfvrec writes: kilobytes


def data_error(path, reason):
    return DataError(path, reason)


def max_input_bytes():
    """The bound on one data file: ``TFVREC_MAX_INPUT_BYTES`` or 16 GiB."""
    text = os.environ.get("TFVREC_MAX_INPUT_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"TFVREC_MAX_INPUT_BYTES={text[:40]!r}: expected a positive number of bytes")
    return value


def _kind(mode):
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_stat(path, info, what, limit, error=data_error):
    """Refuse what is not a regular file, or is larger than ``limit`` bytes."""
    if not stat.S_ISREG(info.st_mode):
        return error(path, f"is {_kind(info.st_mode)}; expected {what} (a regular file)")
    bound = max_input_bytes() if limit is None else limit
    if info.st_size > bound:
        return error(path, f"is {info.st_size:,} bytes, more than the {bound:,} bytes {what} may have"
                           + (" (TFVREC_MAX_INPUT_BYTES)" if limit is None else ""))
    return None


def open_input(path, what="the input file", limit=None, error=data_error):
    """A binary file object of ``path``, checked: a regular file of at most ``limit`` bytes
    (default `max_input_bytes`). ``error(path, reason)`` makes the exception raised."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(path, "file not found") from None
    except IsADirectoryError:
        raise error(path, f"is a directory; expected {what} (a regular file)") from None
    except OSError as e:
        raise error(path, f"cannot open ({e.strerror or e})") from None
    try:
        problem = check_stat(path, os.fstat(fd), what, limit, error)
        if problem is not None:
            raise problem
        os.set_blocking(fd, True)  # (a regular file never blocks; reads need no EAGAIN handling)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_input(path, what="the input file", limit=None, error=data_error):
    """Check ``path`` as `open_input` does, for readers that open it themselves (TensorFlow's)."""
    with open_input(path, what, limit, error):
        pass


def read_input(path, what="the input file", limit=None, error=data_error):
    """The bytes of ``path`` (checked as by `open_input`); a file that grows while read is refused."""
    with open_input(path, what, limit, error) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(size + 1)  # (never more than the checked size, whatever the file does meanwhile)
    if len(data) > size:
        raise error(path, "grew while being read; read it again when it is complete")
    return data


def read_json(path, what="a JSON file", limit=MAX_JSON_BYTES, error=data_error):
    """A JSON document of at most ``limit`` bytes; any problem (not UTF-8, not JSON, nested beyond
    the decoder's depth) is one ``error`` naming the file."""
    data = read_input(path, what, limit, error)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(path, f"not UTF-8 text; expected {what}") from None
    except RecursionError:
        raise error(path, f"nests arrays or objects too deeply; expected {what}") from None
    except ValueError as e:
        raise error(path, f"not valid JSON ({e}); expected {what}") from None


def load_npz(path, what="a .npz archive", names=None, limit=None, error=data_error):
    """The arrays of a NumPy ``.npz`` archive (``names``: only those, each required), read without pickles
    and bounded: every member's declared size is within ``limit`` (`max_input_bytes`), and its array header
    may not claim more than the member holds (NumPy allocates the claimed shape before reading, so a small
    compressed file claiming terabytes would end in a MemoryError)."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    bound = max_input_bytes() if limit is None else limit
    with open_input(path, what, limit, error) as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except Exception as e:  # not a zip / npy at all
            raise error(path, f"not a readable .npz archive ({type(e).__name__}: {e}); expected {what}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise error(path, f"is a single .npy array, not a .npz archive; expected {what}")
        with archive:
            wanted = archive.files if names is None else list(names)
            missing = [n for n in wanted if n not in archive.files]
            if missing:
                raise error(path, f"expected arrays {list(wanted)}, found {sorted(archive.files)}")
            out = {}
            for name in wanted:
                try:
                    info = archive.zip.getinfo(name + ".npy")
                    if info.file_size > bound:
                        raise ValueError(f"array {name!r} declares {info.file_size:,} bytes, more than {bound:,}")
                    with archive.zip.open(info) as member:
                        version = npy.read_magic(member)
                        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                        shape, _, dtype = read_header(member)
                    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    if claimed > info.file_size:
                        raise ValueError(f"array {name!r} claims shape {shape} ({claimed:,} bytes) in a member of "
                                         f"{info.file_size:,} bytes")
                    out[name] = archive[name]
                except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
                    raise error(path, f"not a readable .npz archive ({e}); expected {what}") from None
    return out
