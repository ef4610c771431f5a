"""Pairwise logistic loss: BPR's −ln σ(s_i − s_j), CuratorNet's sigmoid cross-entropy."""
import tensorflow as tf

from tfvrec.losses.pairwise_loss import PairwiseLoss


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PairwiseLogisticLoss(PairwiseLoss):
    """``loss = Σ_{y_i > y_j} softplus(−(s_i − s_j)) = −Σ ln σ(s_i − s_j)``.

    BPR-Opt (Rendle et al. 2009, eq. for BPR-Opt), HASC (Wu et al., eq. 13 with the
    minus-log the paper drops), CuratorNet (Cartagena et al., sigmoid cross-entropy
    with label 1) and CDL's "CE" loss (Lei et al. 2016, eq. 5) are all this loss.
    """

    def pairwise_loss(self, pairwise_logits):
        return tf.nn.softplus(-pairwise_logits)
