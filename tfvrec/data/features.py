"""Item feature files: dense vectors keyed by item id.

Format (``docs/data_format.md``): a NumPy ``.npz`` archive with two arrays,
``item`` (unicode strings, the item ids, unique) and ``features`` (float32,
shape ``[n, d]``, all finite). Files live in a data set's ``features/`` folder as
``features/<name>.npz`` and are selected with the config key ``data.features``.

A feature set may also be sharded (``tfvrec features --runner beam`` writes it so):
``<name>-00000-of-00004.npz`` … ``<name>-00003-of-00004.npz``, the shards' items disjoint;
`load_feature_set` reads either form, and refuses a sharded set with a shard missing.
"""
import glob
import os
import re
import tempfile

import numpy as np

from tfvrec import input_files
from tfvrec.data.errors import DataError


def save_features(path, item_ids, vectors):
    """Write a feature file atomically (temp file + rename: no half-written file)."""
    item_ids = np.asarray([str(i) for i in item_ids])
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(item_ids):
        raise DataError(path, f"expected features of shape [{len(item_ids)}, d], got {vectors.shape}")
    _check_vectors(path, item_ids, vectors)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, item=item_ids, features=vectors)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_features(path):
    """Read and validate a feature file. Returns ``(item_ids, vectors)``."""
    if not os.path.exists(path):
        raise DataError(path, "feature file not found")
    # A regular file, bounded, no pickles, no array claiming more than its member holds (tfvrec.input_files).
    arrays = input_files.load_npz(path, "a .npz feature file", names=("item", "features"))
    item_ids, vectors = arrays["item"].astype(str), arrays["features"]
    if vectors.ndim != 2 or len(vectors) != len(item_ids):
        raise DataError(path, f"expected 'features' of shape [{len(item_ids)}, d], got {vectors.shape}")
    vectors = vectors.astype(np.float32, copy=False)
    _check_vectors(path, item_ids, vectors)
    return item_ids, vectors


def align_features(path, item_ids, vectors, wanted_ids):
    """Rows of ``vectors`` in the order of ``wanted_ids``; every wanted id must be present."""
    index = {item: row for row, item in enumerate(item_ids)}
    rows = np.empty(len(wanted_ids), dtype=np.int64)
    for n, item in enumerate(wanted_ids):
        row = index.get(str(item))
        if row is None:
            raise DataError(path, f"no feature vector for item (file has {len(item_ids)} items)", key=str(item))
        rows[n] = row
    return vectors[rows]


def _check_vectors(path, item_ids, vectors):
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"feature vector contains NaN or inf ({int(bad.sum())} bad rows in all)",
                        key=str(item_ids[row]))
    unique, counts = np.unique(item_ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(path, f"item appears {int(counts.max())} times; item ids must be unique",
                        key=str(unique[counts > 1][0]))


SHARD_NAME = re.compile(r"^(?P<name>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.npz$")


def shard_path(stem, index, count):
    """``<stem>-IIIII-of-CCCCC.npz``: shard ``index`` of ``count`` of the feature set ``stem``."""
    return f"{stem}-{index:05d}-of-{count:05d}.npz"


def sharded_names(folder):
    """Names of the sharded feature sets in ``folder``."""
    if not os.path.isdir(folder):
        return []
    return sorted({m.group("name") for m in map(SHARD_NAME.match, os.listdir(folder)) if m})


def load_feature_set(stem):
    """``(item_ids, vectors)`` of ``<stem>.npz`` or of its shards ``<stem>-*-of-*.npz``."""
    if os.path.exists(stem + ".npz"):
        return load_features(stem + ".npz")
    shards = sorted(glob.glob(glob.escape(stem) + "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].npz"))
    if not shards:
        raise DataError(stem + ".npz", "feature file not found (nor shards " + os.path.basename(stem)
                        + "-NNNNN-of-NNNNN.npz)")
    counts = {int(SHARD_NAME.match(os.path.basename(p)).group("count")) for p in shards}
    if len(counts) != 1:
        raise DataError(shards[0], f"shards of different sets side by side (of {sorted(counts)}); remove the old ones")
    count = counts.pop()
    missing = [shard_path(stem, i, count) for i in range(count) if shard_path(stem, i, count) not in shards]
    if missing:
        raise DataError(missing[0], f"shard missing: the set has {count} shards, {len(shards)} present")
    parts = [load_features(p) for p in shards]
    item_ids = np.concatenate([ids for ids, _ in parts])
    dims = {v.shape[1] for _, v in parts if len(v)}
    if len(dims) > 1:
        raise DataError(stem, f"shards of different dimensions {sorted(dims)}")
    vectors = np.concatenate([v for _, v in parts if len(v)]) if item_ids.size else np.zeros((0, 0), np.float32)
    _check_vectors(stem, item_ids, vectors)
    return item_ids, vectors
