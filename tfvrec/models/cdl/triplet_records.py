"""CDL's training triplets as TFRecords: the schema, the identity the records are checked by, and
the trainer's stream from them (``model.cdl.triplets_path``).

One record per triplet, ``user``, ``positive`` (I+), ``negative`` (I−) and ``epoch``, in the
order the trainer consumes them: epoch e's ``steps_per_epoch × batch_size`` triplets
(`TripletSampler.epoch_triplets`), epoch after epoch. The records are therefore made for
one batch size and step count (both in the identity) and hold ``trainer.epochs`` epochs; a
run that early-stops reads fewer. Batch b is augmented with the seed ``[seed, b]``, as the
in-process stream's, so a run trained from the records equals one sampling in process.
"""
import numpy as np
import tensorflow as tf

from tfvrec.data.errors import DataError
from tfvrec.models.cdl.user_vectors import item_tag_lists
from tfvrec.triplets import manifest as manifest_lib
from tfvrec.triplets import shards

MODEL = "cdl"
SCHEMA = {"user": "int", "positive": "int", "negative": "int", "epoch": "int"}
# The keys of model.cdl that decide the triplets (`usable` images: skip_bad_images, backbone).
SAMPLING_KEYS = ("triplets_per_user", "exclude_friends", "exclude_groups", "exclude_interest_tags", "min_negatives",
                 "use_own_tags", "skip_bad_images", "backbone")


def identity(c, dataset, usable, seed, batch_size, steps):
    """The sampling-relevant config and a fingerprint of what the sampler reads (the manifest's ``identity``)."""
    keys = {f"model.cdl.{key}": getattr(c, key) for key in SAMPLING_KEYS}
    keys.update({"runtime.seed": seed, "trainer.batch_size": batch_size, "steps_per_epoch": steps})
    tags = ["\x1f".join(t) for t in item_tag_lists(dataset)]
    keys["data"] = manifest_lib.fingerprint(dataset.split("train"), dataset.social, dataset.groups, dataset.post_tags,
                                            np.asarray(tags, dtype=str), np.asarray(usable, bool),
                                            np.array([dataset.num_users, dataset.num_items]))
    return keys


def record_triplets(model, dataset, trainer, seed, steps):
    """``triplets_path``'s records as the in-process stream's tuples (users, positives, negatives, positive
    images, negative images, batch seed), checked against this run first."""
    c, batch_size = model.c, trainer.batch_size
    directory = c.triplets_path
    manifest = manifest_lib.check_manifest(directory, MODEL, identity(c, dataset, model.usable, seed, batch_size,
                                                                      steps))
    if manifest["epochs"] < trainer.epochs:
        raise DataError(manifest_lib.manifest_path(directory), f"the records hold {manifest['epochs']} epochs, the "
                        f"run trains {trainer.epochs}; write them with trainer.epochs={trainer.epochs}",
                        key="trainer.epochs")
    inputs = model.item_inputs
    shape, dtype = inputs.shape[1:], tf.as_dtype(inputs.dtype)

    def images(items):  # gathered from the numpy catalogue, as the in-process generator does
        return tf.ensure_shape(tf.numpy_function(lambda i: inputs[i], [items], dtype), [batch_size, *shape])

    def to_tuple(batch, serialized):
        parsed = tf.io.parse_example(serialized, shards.parse_spec(SCHEMA))
        users, positives, negatives = parsed["user"], parsed["positive"], parsed["negative"]
        batch_seed = tf.stack([tf.constant(seed % (2 ** 31), tf.int64), batch])
        return users, positives, negatives, images(positives), images(negatives), batch_seed
    return (shards.read_records(manifest_lib.shard_paths(directory, manifest))
            .batch(batch_size, drop_remainder=True)
            .enumerate()  # batch b = epoch × steps + step: the augmentation seed of the in-process stream
            .map(to_tuple))
