"""CuratorNet's D_S as TFRecords: the schema, the identity the records are checked by, and the
trainer's batch stream from them (``model.curatornet.triplets_path``).

One record per triplet of D_S, in the stream's order (`tfvrec.models.curatornet.sampling`):
``profile`` (the profile's item ids, materialised: most recent last, the hidden item left
out, at most ``max_profile_items``), ``positive`` (i), ``negative`` (j), ``user`` (-1 for
the artificial profiles of D5 and D6) and ``guideline`` (an index into the manifest's
``guidelines``). The profile is stored as items, not as a range of the purchase array, so
the records need nothing else to be read: the trainer streams them without building the
sampler (its per-user scans and visual clusters).

The stream repeats D_S pass after pass and cuts it into batches across pass boundaries,
exactly as `TripletSampler.batches` does, so a run trained from the records equals a run
sampling in process with the same seed.
"""
import numpy as np
import tensorflow as tf

from tfvrec.data.errors import DataError
from tfvrec.triplets import manifest as manifest_lib
from tfvrec.triplets import shards

MODEL = "curatornet"
SCHEMA = {"profile": "ints", "positive": "int", "negative": "int", "user": "int", "guideline": "int"}
# The keys of model.curatornet that decide D_S (clusters included: negatives avoid them).
SAMPLING_KEYS = ("sampling", "guidelines", "num_triplets", "sampler_chunk", "max_profile_items", "num_clusters",
                 "cluster_dims", "cluster_restarts", "silhouette_sample")


def identity(config, dataset, seed=None):
    """The sampling-relevant config and a fingerprint of what the sampler reads (the manifest's ``identity``)."""
    c = config.model.curatornet
    keys = {f"model.curatornet.{key}": getattr(c, key) for key in SAMPLING_KEYS}
    keys["runtime.seed"] = config.runtime.seed if seed is None else seed
    keys["data.features"] = config.data.features
    features = dataset.features(config.data.features) if config.data.features else None
    keys["data"] = manifest_lib.fingerprint(dataset.split("train"), dataset.item_artist, features,
                                            np.array([dataset.num_users, dataset.num_items]))
    return keys


def _batch(serialized):
    parsed = tf.io.parse_example(serialized, shards.parse_spec(SCHEMA))
    profiles = parsed["profile"]
    # As `TripletSampler.materialize`: left-aligned, padded with -1 to the batch's longest (≥ 1).
    width = tf.maximum(tf.cast(tf.reduce_max(profiles.row_lengths()), tf.int64), 1)
    profile = profiles.to_tensor(default_value=-1, shape=tf.stack([tf.shape(serialized, tf.int64)[0], width]))
    return {"profile": profile, "positive": parsed["positive"], "negative": parsed["negative"],
            "user": parsed["user"]}


def record_dataset(config, dataset, batch_size, seed=None):
    """The infinite batch stream of ``triplets_path``'s records, as `triplet_dataset`'s (checked first)."""
    directory = config.model.curatornet.triplets_path
    manifest = manifest_lib.check_manifest(directory, MODEL, identity(config, dataset, seed))
    if not manifest["counts"]["triplets"]:
        raise DataError(manifest_lib.manifest_path(directory), "the record set holds no triplet", key="counts")
    return (shards.read_records(manifest_lib.shard_paths(directory, manifest))
            .repeat()  # passes over the same D_S, batches running across their boundaries
            .batch(batch_size, drop_remainder=True)
            .map(_batch)
            .prefetch(4))
