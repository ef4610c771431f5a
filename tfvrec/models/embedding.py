"""An embedding table that also works when sharded over parameter servers.

`tf.keras.layers.Embedding` looks ids up with ``embedding_lookup``, which a
``ShardedVariable`` (ParameterServerStrategy's partitioned tables,
`tfvrec.training.parameter_server`) accepts only for 1-D ids. This layer flattens the ids,
looks them up and restores their shape: the same values, weights and checkpoint names as
the Keras layer, under every strategy.
"""
import tensorflow as tf


class Embedding(tf.keras.layers.Embedding):
    def call(self, inputs):
        if inputs.shape.rank == 1:
            return super().call(inputs)
        flat = super().call(tf.reshape(inputs, [-1]))
        return tf.reshape(flat, tf.concat([tf.shape(inputs), [self.output_dim]], axis=0))


def gather(table, ids):
    """``tf.gather(table, ids)`` for ids of any rank, also when ``table`` is sharded."""
    ids = tf.convert_to_tensor(ids)
    if ids.shape.rank == 1:
        return tf.gather(table, ids)
    flat = tf.gather(table, tf.reshape(ids, [-1]))
    return tf.reshape(flat, tf.concat([tf.shape(ids), tf.shape(flat)[1:]], axis=0))
