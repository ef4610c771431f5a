"""Pointwise task: each (query, item) pair classified liked / not liked with a learned offset.

CDL's TwoNets baseline (Lei et al., §6.1.2): p(like | U, I) = σ(b − D(U, I)) with binary
cross-entropy on the positive (y = 1) and the negative (y = 0) image of each triplet. The
model's scores are s = −D ≥ … ≤ 0, so without the offset p = σ(s) ≤ ½ for every pair and the
classifier could never say "like"; b is a variable of the task (a re-scaled distance, as the
paper's sigmoid of the distance), learned with the rest.
"""
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfvrec.tasks.pairwise_ranking import PairwiseAccuracy, ScoreListTask


class PointwiseTask(ScoreListTask, tf.keras.layers.Layer, tfrs.tasks.Task):
    """Σ over a list's items of sigmoid cross-entropy(label, b + score), averaged over the global batch."""

    def __init__(self, metrics=None, name=None):
        super().__init__(name=name)
        self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=True)
        self._ranking_metrics = list(metrics) if metrics is not None else [PairwiseAccuracy()]

    def call(self, labels, scores, compute_metrics=True):
        logits = tf.cast(scores, tf.float32) + self.offset
        labels = tf.cast(labels, tf.float32)
        valid = tf.cast(labels >= 0, tf.float32)
        per_pair = tf.nn.sigmoid_cross_entropy_with_logits(tf.maximum(labels, 0.0), logits) * valid
        if compute_metrics:
            for metric in self._ranking_metrics:
                metric.update_state(labels, logits)
        return tf.nn.compute_average_loss(tf.reduce_sum(per_pair, axis=1))

    @property
    def metrics(self):
        return self._ranking_metrics
