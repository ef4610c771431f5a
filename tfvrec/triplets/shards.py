"""Triplet record shards: file names, the ``tf.train.Example`` encoding, writing and reading.

A record set's triplets have one global order (the in-process stream's); shard ``s`` holds
the triplets ``s·R … (s+1)·R − 1`` of it, R = ⌈planned / S⌉ for the planned number of
triplets, so reading the shards in order gives the stream back, a writer can fill them
one after another without knowing the final count, and a Beam worker can place any
triplet from its index alone. A shard nothing falls into (a stream that ended early) is
written empty: the set is complete.

A model's schema maps feature names to ``"int"`` (one int64) or ``"ints"`` (a list of
int64, e.g. CuratorNet's profile).
"""
import math
import os

import numpy as np
import tensorflow as tf

SHARD_PATTERN = "triplets-{:05d}-of-{:05d}.tfrecord.gz"
COMPRESSION = "GZIP"
KINDS = ("int", "ints")


def shard_name(shard, num_shards):
    return SHARD_PATTERN.format(shard, num_shards)


def rows_per_shard(planned, num_shards):
    return max(1, math.ceil(planned / num_shards))


def _feature(kind, value):
    values = np.asarray(value, np.int64).reshape(-1 if kind == "ints" else 1)
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))


def encode(schema, columns, rows=None):
    """Serialized ``tf.train.Example`` of each row of ``columns`` (name → per-row values)."""
    count = len(next(iter(columns.values())))
    out = []
    for r in range(count) if rows is None else rows:
        features = {name: _feature(kind, columns[name][r]) for name, kind in schema.items()}
        out.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return out


def write_shard(path, serialized):
    """Write serialized records to one shard file (GZIP), atomically (written aside, renamed)."""
    with tf.io.TFRecordWriter(path + ".tmp", options=COMPRESSION) as writer:
        for record in serialized:
            writer.write(record)
    os.replace(path + ".tmp", path)
    return len(serialized)


class ShardWriter:
    """Fills shards in order from a stream of row batches (the in-process writer)."""

    def __init__(self, directory, schema, num_shards, planned):
        self.directory, self.schema, self.num_shards = directory, schema, num_shards
        self.per_shard = rows_per_shard(planned, num_shards)
        self.counts = [0] * num_shards
        self.shard, self.pending = 0, []

    def _flush(self):
        path = os.path.join(self.directory, shard_name(self.shard, self.num_shards))
        self.counts[self.shard] = write_shard(path, self.pending)
        self.shard, self.pending = self.shard + 1, []

    def write(self, columns):
        for record in encode(self.schema, columns):
            if len(self.pending) == self.per_shard:
                self._flush()
            self.pending.append(record)

    def close(self):
        while self.shard < self.num_shards:  # the last filled shard, then empty ones
            self._flush()
        return self.counts


def parse_spec(schema):
    return {name: tf.io.FixedLenFeature([], tf.int64) if kind == "int" else tf.io.RaggedFeature(tf.int64)
            for name, kind in schema.items()}


def read_records(paths):
    """The serialized records of the shards, in order (one reader: the order is the stream's)."""
    return tf.data.TFRecordDataset(list(paths), compression_type=COMPRESSION)


def read_rows(paths, schema):
    """Every record of the shards as numpy columns (tests and small sets: loads them all)."""
    spec = parse_spec(schema)
    columns = {name: [] for name in schema}
    for batch in read_records(paths).batch(4096):
        parsed = tf.io.parse_example(batch, spec)
        for name, kind in schema.items():
            columns[name].extend(parsed[name].numpy() if kind == "int" else parsed[name].to_list())
    return {name: np.asarray(values, np.int64) if schema[name] == "int" else values
            for name, values in columns.items()}
