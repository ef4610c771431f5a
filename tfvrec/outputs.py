"""Directories tfvrec writes as a whole, and the only ones a command may replace.

A data set (``data synth``, ``data import``, ``cdl-split``), a triplet record set, a converted
TF-Hub model and a feature extraction's partial results are each written aside (a hidden
temporary sibling) and renamed into place, with a marker file `MARKER` naming their kind.
`prepare` is called before any work: it refuses an output directory that

- is one of the command's inputs, lies inside one, or holds one (compared by real path: a
  symlink or ``..`` changes nothing), since replacing it would delete what the command reads;
- exists and ``overwrite`` is not given;
- exists, is not empty, and carries no marker of this kind: ``--overwrite`` replaces what tfvrec
  made, never a directory that merely has the same name (a home directory, raw data, a run).

`publish` then swaps the finished temporary directory in (the old one is moved aside first and
removed only after the new one is in place). TensorFlow-free.
"""
import os
import shutil
import tempfile

from tfvrec.errors import DataError

MARKER = ".tfvrec-output"
KINDS = ("dataset", "triplets", "hub_model", "feature_parts")


def _real(path):
    return os.path.realpath(os.path.abspath(path))


def _inside(path, directory):
    """Whether real path ``path`` is ``directory`` or lies under it."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def kind_of(directory):
    """The kind in ``directory``'s marker, or None (no marker, or not a marker tfvrec wrote)."""
    path = os.path.join(directory, MARKER)
    try:
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 256:
            return None
        with open(path, encoding="utf-8") as f:
            kind = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return kind if kind in KINDS else None


def mark(directory, kind):
    """Write ``directory``'s marker (it is tfvrec's ``kind`` output)."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {KINDS}")
    with open(os.path.join(directory, MARKER), "w", encoding="utf-8") as f:
        f.write(kind + "\n")


def check_not_input(out, inputs, flag="--out"):
    """Refuse ``out`` when it is, holds or lies inside one of ``inputs`` (``{label: path}``)."""
    target = _real(out)
    for label, path in inputs.items():
        if not path:
            continue
        source = _real(path)
        if _inside(target, source) or _inside(source, target):
            relation = ("is" if target == source else "lies inside" if _inside(target, source) else "holds")
            raise DataError(out, f"{flag} {relation} {label} {path}, an input of this command; writing there "
                                 f"would replace what the command reads. Choose another {flag}")


def prepare(out, kind, overwrite=False, inputs=None, flag="--out"):
    """Check that ``out`` may be written (see the module doc); returns its absolute path."""
    out = os.path.abspath(out)
    check_not_input(out, inputs or {}, flag)
    if os.path.lexists(out):
        if not overwrite:
            raise DataError(out, "output directory already exists (pass --overwrite to replace it)")
        if os.path.islink(out) or not os.path.isdir(out):
            raise DataError(out, f"exists and is not a directory; --overwrite replaces only a {_name(kind)} "
                                 "tfvrec wrote. Remove it yourself or choose another " + flag)
        if os.listdir(out) and kind_of(out) != kind:
            found = kind_of(out)
            what = f"a tfvrec {_name(found)}, not a {_name(kind)}" if found else "not something tfvrec wrote"
            raise DataError(out, f"is {what} (no {MARKER} marker of a {_name(kind)}); --overwrite replaces only "
                                 f"a {_name(kind)} tfvrec wrote, never another directory. Remove it yourself or "
                                 f"choose another {flag}")
    return out


def temporary(out):
    """A new hidden directory beside ``out`` to write into (then `publish` it)."""
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(out)}-", dir=parent)


def publish(tmp, out, kind, overwrite=False):
    """Mark ``tmp`` as a ``kind`` output and move it to ``out``, replacing what `prepare` allowed."""
    mark(tmp, kind)
    out = os.path.abspath(out)
    old = None
    if os.path.lexists(out):  # (checked again: another process may have written it meanwhile)
        if not overwrite:
            raise DataError(out, "output directory already exists (written meanwhile?); pass --overwrite to "
                                 "replace it")
        if os.path.islink(out) or not os.path.isdir(out) or (os.listdir(out) and kind_of(out) != kind):
            raise DataError(out, f"is no longer a {_name(kind)} tfvrec wrote; not replaced")
        old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(out)}-", dir=os.path.dirname(out))
        os.rename(out, os.path.join(old, "previous"))
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def _name(kind):
    return {"dataset": "data set", "triplets": "triplet record set", "hub_model": "converted TF-Hub model",
            "feature_parts": "folder of partial feature results"}.get(kind, str(kind))
