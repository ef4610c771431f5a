"""Pairwise hinge loss: max(0, m − (s_i − s_j)), CDL's "hinge" variant."""
import tensorflow as tf

from tfvrec.losses.pairwise_loss import PairwiseLoss


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PairwiseHingeLoss(PairwiseLoss):
    """``loss = Σ_{y_i > y_j} max(0, margin − (s_i − s_j))`` (Lei et al. 2016, §4)."""

    def __init__(self, margin=1.0, **kwargs):
        super().__init__(**kwargs)
        self.margin = margin

    def pairwise_loss(self, pairwise_logits):
        return tf.nn.relu(self.margin - pairwise_logits)

    def get_config(self):
        return dict(super().get_config(), margin=self.margin)
