"""Turn the config's ``data`` section into a loaded `Dataset` (generating or importing once).

An import is cached under ``data.cache_dir`` keyed by the raw folder's path, the importer's
options, the importer's version and a fingerprint of the raw files (`raw_fingerprint`: every
file's relative path, size and modification time), so a changed raw folder or importer is
imported again instead of silently reusing a stale import.

Paths in ``data.path`` and ``data.raw_path`` may start with ``${TFVREC_SHARED_DATA}``: the
folder of the real data sets, the environment variable of that name when it is set,
else ``../shared/data`` (beside the repository, where the team keeps them).
"""
import hashlib
import importlib
import json
import os

from absl import logging

from tfvrec.data.dataset import load_dataset
from tfvrec.data.errors import DataError
from tfvrec.data import importers
from tfvrec.data.importers import writing
from tfvrec.data import synthetic


SHARED_DATA_VARIABLE = "TFVREC_SHARED_DATA"
DEFAULT_SHARED_DATA = os.path.join("..", "shared", "data")


def shared_data_dir():
    """The folder of the real data sets (``$TFVREC_SHARED_DATA``, default ``../shared/data``)."""
    return os.environ.get(SHARED_DATA_VARIABLE) or DEFAULT_SHARED_DATA


def expand_path(path):
    """``path`` with ``${TFVREC_SHARED_DATA}`` (or ``$TFVREC_SHARED_DATA``) replaced by `shared_data_dir`."""
    for token in ("${" + SHARED_DATA_VARIABLE + "}", "$" + SHARED_DATA_VARIABLE):
        if path.startswith(token):
            return shared_data_dir() + path[len(token):]
    return path


def _cache_path(data_config, kind, payload):
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(data_config.cache_dir, f"{kind}-{digest}")


def raw_fingerprint(raw_dir):
    """A digest of every regular file under ``raw_dir`` (recursively): its relative path, size and
    ``mtime_ns``. Cheap (one ``stat`` per file, no reading: the posters folder has ~3,900 images)
    and it changes whenever a file is added, removed, renamed, rewritten or touched."""
    digest = hashlib.sha256()
    count = 0
    for folder, subfolders, files in os.walk(raw_dir):
        subfolders.sort()  # (os.walk visits them in this order: the digest does not depend on the listing)
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):  # (a dangling link, a socket: not a file an importer can read)
                continue
            try:
                info = os.stat(path)
            except OSError as e:
                raise DataError(path, f"cannot read the raw file ({e.strerror or e})") from None
            digest.update(json.dumps([os.path.relpath(path, raw_dir), info.st_size, info.st_mtime_ns]).encode())
            digest.update(b"\n")
            count += 1
    return f"{count}:{digest.hexdigest()[:16]}"


def importer_version(name):
    """The version of importer ``name``: the shared writer's and the importer module's own ``VERSION``
    (raise it when a change to the importer changes what it writes, so cached imports are redone)."""
    function = importers.IMPORTERS.get(name)
    module = importlib.import_module(function.__module__) if function is not None else None
    return [writing.IMPORTER_VERSION, getattr(module, "VERSION", 0)]


def dataset_path(data_config):
    """Directory holding the data set in the tfvrec format, creating it if needed."""
    if data_config.source == "directory":
        return expand_path(data_config.path)
    if data_config.source == "synthetic":
        # Opt-in knobs at their default stay out of the key: a world keeps the key of before they existed.
        path = _cache_path(data_config, "synthetic", synthetic.key_fields(data_config.synthetic))
        if not os.path.exists(path):
            logging.info("Generating the synthetic world into %s", path)
            _create_once(path, lambda: synthetic.write_world(path, data_config.synthetic))
        return path
    if data_config.source == "import":
        raw = os.path.abspath(expand_path(data_config.raw_path))
        if not os.path.isdir(raw):
            raise DataError(raw, f"raw data folder for importer '{data_config.importer}' not found "
                                 f"(data.raw_path={data_config.raw_path!r})")
        path = _cache_path(data_config, data_config.importer,
                           {"raw": raw, "options": data_config.import_options, "files": raw_fingerprint(raw),
                            "importer_version": importer_version(data_config.importer)})
        if not os.path.exists(path):
            logging.info("Importing %s from %s into %s", data_config.importer, raw, path)
            _create_once(path, lambda: importers.import_dataset(data_config.importer, raw, path,
                                                                **data_config.import_options))
        return path
    raise ValueError(f"unknown data.source {data_config.source!r}")


def _create_once(path, create):
    try:
        create()
    except DataError:
        # Another process may have created the same cache entry first (the write is
        # an atomic rename); anything else is a real error.
        if not os.path.exists(path):
            raise


def resolve_dataset(data_config):
    return load_dataset(dataset_path(data_config), truncated=getattr(data_config, "truncated_rows", "error"))
