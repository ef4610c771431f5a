"""Pairwise ranking task: a tfrs task scoring a positive against sampled negatives."""
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfvrec.losses import PairwiseLogisticLoss


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PairwiseAccuracy(tf.keras.metrics.Mean):
    """Share of (positive, negative) pairs ranked in the right order: a running sampled AUC."""

    def __init__(self, name="pairwise_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, y_pred.dtype)
        pairs = (y_true[:, :, None] > y_true[:, None, :]) & (y_true[:, None, :] >= 0)
        right = tf.cast(y_pred[:, :, None] > y_pred[:, None, :], y_pred.dtype)
        ties = tf.cast(tf.equal(y_pred[:, :, None], y_pred[:, None, :]), y_pred.dtype)
        return super().update_state(tf.boolean_mask(right + 0.5 * ties, pairs))


def default_labels(scores):
    """``[1, 0, …, 0]`` per list: one positive, then its negatives."""
    return tf.concat([tf.ones_like(scores[:, :1]), tf.zeros_like(scores[:, 1:])], axis=1)


class ScoreListTask:
    """A task over score lists (`tfvrec.tasks.ScoredBatch`): ``call(labels, scores)``, the labels ``[1, 0, …, 0]``
    unless the batch brings its own."""

    needs = "scores"

    def compute(self, batch):
        labels = batch.labels if batch.labels is not None else default_labels(batch.scores)
        return self(labels, batch.scores)


class PairwiseRankingTask(ScoreListTask, tf.keras.layers.Layer, tfrs.tasks.Task):
    """Loss over score lists ``[positive, negative_1..n]`` plus ranking metrics.

    Like ``tfrs.tasks.Retrieval``, the loss and the metrics are passed in. The loss
    is any `tfvrec.losses.PairwiseLoss` (default: the logistic/BPR loss); it is
    averaged over the *global* batch (``tf.nn.compute_average_loss``) so gradients
    summed across replicas under ``tf.distribute`` equal single-device gradients.
    """

    def __init__(self, loss=None, metrics=None, name=None):
        super().__init__(name=name)
        self._loss = loss if loss is not None else PairwiseLogisticLoss()
        self._ranking_metrics = list(metrics) if metrics is not None else [PairwiseAccuracy()]

    def call(self, labels, scores, sample_weight=None, compute_metrics=True):
        """Returns the loss; ``labels``/``scores`` are ``[batch, list_size]``."""
        scores = tf.cast(scores, tf.float32)  # float32 loss under mixed precision
        per_list = self._loss.call(labels, scores)  # unreduced: one value per list
        loss = tf.nn.compute_average_loss(per_list, sample_weight=sample_weight)
        if compute_metrics:
            for metric in self._ranking_metrics:
                metric.update_state(labels, scores, sample_weight=sample_weight)
        return loss

    @property
    def metrics(self):
        return self._ranking_metrics
