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
    (e.g. ``get("hinge", margin=0.5)``; ``margin`` is ignored by ``logistic``; ``list_reduction`` is
    every pairwise loss's)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown loss {name!r}; choices: {names()}")
    cls = _BY_NAME[name]
    # Every keyword a constructor of the class or its bases names (``list_reduction`` is the base's).
    accepted = {p for klass in cls.__mro__ if "__init__" in vars(klass)
                for p in inspect.signature(klass.__init__).parameters}
    return cls(**{k: v for k, v in options.items() if k in accepted})
