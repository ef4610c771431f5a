"""Pairwise ranking losses as Keras losses (serializable, usable with `model.compile`),
chosen by name from a model's config (``model.<name>.loss``) through `get`."""
import inspect

from tfvrec.losses.pairwise_hinge_loss import PairwiseHingeLoss
from tfvrec.losses.pairwise_logistic_loss import PairwiseLogisticLoss
from tfvrec.losses.pairwise_loss import PairwiseLoss

__all__ = ["PairwiseLoss", "PairwiseLogisticLoss", "PairwiseHingeLoss", "get", "names"]

_BY_NAME = {"logistic": PairwiseLogisticLoss, "hinge": PairwiseHingeLoss}


def names():
    return sorted(_BY_NAME)


def get(name, **options):
    """The loss called ``name``, built with those of ``options`` its constructor takes
    (e.g. ``get("hinge", margin=0.5)``; ``margin`` is ignored by ``logistic``)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown loss {name!r}; choices: {names()}")
    cls = _BY_NAME[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})
