"""Base class of the pairwise ranking losses (after keras-rs ``PairwiseLoss``)."""
import abc

import tensorflow as tf


class PairwiseLoss(tf.keras.losses.Loss, abc.ABC):
    """Loss over every pair (i, j) of a list with ``y_true[i] > y_true[j]``.

    ``y_true`` and ``y_pred`` have shape ``[batch, list_size]`` (or ``[list_size]``);
    labels below 0 mark padding and form no pair. The per-list loss is the sum over
    its pairs of ``pairwise_loss(s_i - s_j)`` (``list_reduction="mean"``: the mean over
    its pairs, 0 for a list without a pair; CNN-PerMLP's post-wise BPR). For the usual triplet, the list is
    ``[positive, negative_1, ..., negative_n]`` with labels ``[1, 0, ..., 0]``.

    Subclasses implement `pairwise_loss` only.
    """

    def __init__(self, temperature=1.0, list_reduction="sum", **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0.0:
            raise ValueError(f"`temperature` must be positive, got {temperature}")
        if list_reduction not in ("sum", "mean"):
            raise ValueError(f"`list_reduction` must be 'sum' or 'mean', got {list_reduction!r}")
        self.temperature = temperature
        self.list_reduction = list_reduction

    @abc.abstractmethod
    def pairwise_loss(self, pairwise_logits):
        """Loss of one ordered pair, as a function of ``s_i - s_j``."""

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_pred.shape.rank == 1:
            y_true, y_pred = y_true[tf.newaxis], y_pred[tf.newaxis]
        valid = y_true >= 0
        # [batch, i, j]: the pair (i, j) counts when i is labelled above j and both are valid.
        pair_mask = (y_true[:, :, None] > y_true[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        pairwise_logits = (y_pred[:, :, None] - y_pred[:, None, :]) / tf.cast(self.temperature, y_pred.dtype)
        losses = tf.where(pair_mask, self.pairwise_loss(pairwise_logits), tf.zeros_like(pairwise_logits))
        total = tf.reduce_sum(losses, axis=[1, 2])
        if self.list_reduction == "mean":
            pairs = tf.reduce_sum(tf.cast(pair_mask, y_pred.dtype), axis=[1, 2])
            total = tf.math.divide_no_nan(total, pairs)
        return total

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature, list_reduction=self.list_reduction)
