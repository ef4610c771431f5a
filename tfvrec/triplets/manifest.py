"""The manifest of a triplet record set (``triplets.json``) and the identity it is checked by.

A record set is made for one model, seed, sampling config and data set. Its identity is the
sampling-relevant config keys by name (e.g. ``model.curatornet.num_triplets``) plus
``data``, a fingerprint of what the sampler reads; ``config_digest`` is the SHA-256 of the
identity. The trainer refuses records whose identity differs from its own, naming the
manifest and the first key that differs: records made for another config would train a run
that no in-process run reproduces, silently. TensorFlow-free.
"""
import hashlib
import json
import os

import numpy as np
import pandas as pd

from tfvrec import input_files
from tfvrec.data.errors import DataError

MANIFEST = "triplets.json"
FORMAT = 1


def fingerprint(*parts):
    """SHA-256 (hex) of data frames and arrays, in order (frames by pandas' stable row hashes)."""
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"<none>")
        elif isinstance(part, pd.DataFrame):
            digest.update(repr(list(part.columns)).encode())
            digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        else:
            array = np.ascontiguousarray(np.asarray(part))
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def normalized(identity):
    """The identity as JSON gives it back (tuples → lists), so written and computed ones compare equal."""
    return json.loads(json.dumps(identity, sort_keys=True))


def config_digest(identity):
    return hashlib.sha256(json.dumps(normalized(identity), sort_keys=True).encode()).hexdigest()


def manifest_path(directory):
    return os.path.join(directory, MANIFEST)


def write_manifest(directory, manifest):
    path = manifest_path(directory)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def read_manifest(directory):
    path = manifest_path(directory)
    if not os.path.isdir(directory):
        raise DataError(directory, "no such directory of triplet records; write them with `tfvrec triplets "
                                   "--config CFG --out DIR` (or leave triplets_path empty to sample in process)")
    if not os.path.exists(path):
        raise DataError(path, "missing: the directory holds no triplet record set (`tfvrec triplets` writes it)")
    manifest = input_files.read_json(path, "a triplet manifest")  # (bounded, regular file: tfvrec.input_files)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(path, f"not a format-{FORMAT} triplet manifest; write the records again with this tfvrec",
                        key="format")
    return manifest


def check_manifest(directory, model, identity):
    """The manifest of the records in ``directory``, checked against ``model`` and ``identity``
    (`DataError` naming the manifest and the key that differs), with its shard files present."""
    manifest = read_manifest(directory)
    path = manifest_path(directory)
    if manifest.get("model") != model:
        raise DataError(path, f"the records are {manifest.get('model')!r} triplets, not {model!r} ones",
                        key="model")
    theirs, ours = manifest.get("identity", {}), normalized(identity)
    # In the identity's own order (config keys, then what derives from them, then the data), so
    # the key named is the one to change (a batch size, not the step count it implies).
    for key in list(identity) + sorted(set(theirs) - set(identity)):
        if theirs.get(key) != ours.get(key):
            if key == "data":
                reason = ("the records were made from other data (the data set, its training split or the "
                          "inputs of sampling differ)")
            else:
                reason = f"the records were made with {key}={theirs.get(key)!r}, this config has {ours.get(key)!r}"
            raise DataError(path, f"{reason}; write them again for this config (tfvrec triplets --config ...) or "
                                  "clear triplets_path to sample in process", key=key)
    if manifest.get("config_digest") != config_digest(ours):
        raise DataError(path, "the config digest does not match the records' identity (an edited manifest?); "
                              "write the records again", key="config_digest")
    for shard in manifest["shards"]:
        file = os.path.join(directory, shard["file"])
        if not os.path.exists(file):
            raise DataError(file, f"shard missing (the manifest lists {len(manifest['shards'])} shards)")
    return manifest


def shard_paths(directory, manifest):
    """The shard files in stream order."""
    return [os.path.join(directory, shard["file"]) for shard in manifest["shards"]]
