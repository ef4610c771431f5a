"""tfrs' retrieval objective over the global batch: in-batch negatives gathered across replicas.

``tfrs.tasks.Retrieval`` scores each query against the candidates it is given and applies
a softmax cross-entropy with the query's own positive as the label (plus the options:
temperature, log-Q correction, accidental-hit removal). Under ``tf.distribute`` each
replica calls it on its share of the batch, so with N replicas every query sees 1/N of
the in-batch negatives a single device sees — a different objective. `RetrievalTask`
all-gathers the candidates first (inside the replica context, rolled so the replica's
own positives come first and keep tfrs' diagonal labels), so N replicas compute the
softmax of one device over the global batch; the per-example losses are averaged over
the global batch (``tf.nn.compute_average_loss``), so the summed gradients equal one
device's. ``cross_replica=False`` keeps tfrs' per-replica behaviour (for comparison).
"""
import tensorflow as tf
import tensorflow_recommenders as tfrs


def gather_across_replicas(values):
    """``values`` of every replica concatenated along axis 0, this replica's first.

    Built on ``all_reduce`` (each replica contributes its rows at its own slot of a zero
    tensor; the sum is the concatenation), which every strategy supports, differentiably:
    ``ReplicaContext.all_gather`` fails under MultiWorkerMirroredStrategy on CPU
    ("destinations can not be empty"). Integer ids travel as float64 (exact below 2⁵³)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    n, rid = context.num_replicas_in_sync, context.replica_id_in_sync_group
    dtype = values.dtype
    carried = tf.cast(values, tf.float64) if dtype.is_integer else values
    slot = tf.reshape(tf.one_hot(rid, n, dtype=carried.dtype), [n] + [1] * carried.shape.rank)
    summed = context.all_reduce(tf.distribute.ReduceOp.SUM, slot * carried[tf.newaxis])
    gathered = tf.reshape(summed, tf.concat([[-1], tf.shape(values)[1:]], axis=0))
    if dtype.is_integer:
        gathered = tf.cast(tf.round(gathered), dtype)
    return tf.roll(gathered, -rid * tf.shape(values)[0], axis=0)


class RetrievalTask(tf.keras.layers.Layer, tfrs.tasks.Task):
    """``tfrs.tasks.Retrieval`` on the global batch's candidates, averaged over the global batch.

    ``extra_negatives``: the examples' sampled negatives join the candidates too. ``frequency``
    ``[num_items]`` (the share of training interactions on each item; None: no correction): each
    candidate's logit is corrected by log Q(i) (Yi et al., RecSys 2019), the candidate pool mixing
    positives drawn ∝ frequency and n uniform negatives per positive, so Q(i) ∝ frequency_i + n / |I|.
    """

    needs = "vectors"  # a `tfvrec.tasks.batches.EmbeddedBatch`

    def __init__(self, temperature=1.0, remove_accidental_hits=True, cross_replica=True, metrics=None,
                 extra_negatives=True, frequency=None, name=None):
        super().__init__(name=name)
        self.cross_replica = cross_replica
        self.extra_negatives = extra_negatives
        self.frequency = None if frequency is None else tf.constant(frequency, tf.float32)
        self._retrieval = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True,
                                                         reduction=tf.keras.losses.Reduction.NONE),
            metrics=metrics, temperature=temperature, remove_accidental_hits=remove_accidental_hits)

    def call(self, query, candidates, candidate_ids, candidate_sampling_probability=None, extra=None,
             compute_metrics=False):
        """Loss of queries ``[B, d]`` whose positives are ``candidates`` ``[B, d]`` (ids ``[B]``).

        ``extra``: optional ``(embeddings [M, d], ids [M], sampling probability [M] or None)``
        of further negatives for every query (gathered across replicas too).
        ``candidate_sampling_probability``: ``[B]`` (log-Q correction; None: none).
        """
        parts = [(candidates, candidate_ids, candidate_sampling_probability)]
        if extra is not None:
            parts.append(extra)
        gather = gather_across_replicas if self.cross_replica else (lambda v: v)
        embeddings = tf.concat([gather(tf.cast(e, tf.float32)) for e, _, _ in parts], axis=0)
        ids = tf.concat([gather(i) for _, i, _ in parts], axis=0)
        probability = None
        if candidate_sampling_probability is not None:
            probability = tf.concat([gather(tf.cast(p, tf.float32)) for _, _, p in parts], axis=0)
        per_example = self._retrieval(tf.cast(query, tf.float32), embeddings,
                                      candidate_sampling_probability=probability, candidate_ids=ids,
                                      compute_metrics=compute_metrics, compute_batch_metrics=False)
        return tf.nn.compute_average_loss(per_example)

    def compute(self, batch):
        """The loss of an `EmbeddedBatch`, with its negatives and the log-Q correction as configured."""
        extra, k = None, 0
        if self.extra_negatives and batch.negatives is not None:
            k = tf.shape(batch.negative_ids)[1]
            extra = [tf.reshape(batch.negatives, [-1, tf.shape(batch.negatives)[-1]]),
                     tf.reshape(batch.negative_ids, [-1]), None]
        probability = None
        if self.frequency is not None:
            uniform = tf.cast(k, tf.float32) / tf.cast(tf.size(self.frequency), tf.float32)
            probability = tf.gather(self.frequency, batch.positive_ids) + uniform
            if extra is not None:
                extra[2] = tf.gather(self.frequency, extra[1]) + uniform
        return self(batch.query, batch.positive, batch.positive_ids, candidate_sampling_probability=probability,
                    extra=tuple(extra) if extra is not None else None)
