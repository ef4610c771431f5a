"""Pairwise ranking losses as Keras losses (serializable, usable with `model.compile`)."""
from tfvrec.losses.pairwise_hinge_loss import PairwiseHingeLoss
from tfvrec.losses.pairwise_logistic_loss import PairwiseLogisticLoss
from tfvrec.losses.pairwise_loss import PairwiseLoss

__all__ = ["PairwiseLoss", "PairwiseLogisticLoss", "PairwiseHingeLoss"]
