"""HASC starts P, W (and b) from a trained BPR-MF (Wu et al., §4.1), run by the trainer.

``model.hasc.bpr_run`` names an existing BPR-MF run; empty: a BPR-MF is trained first
into ``<model_dir>/bpr_init`` with the same data, trainer and runtime sections,
``model.bpr`` for λ and initialisation, and ``embedding_dim`` = D.
"""
import copy
import os

from tfvrec import config as config_lib
from tfvrec.errors import ConfigError
from tfvrec.registry import WarmStart

BPR = "bpr"  # the model HASC starts from (Wu et al., §4.1: P and W of a trained BPR-MF)


def bpr_init_config(config):
    """The BPR-MF run that initialises a HASC run without ``model.hasc.bpr_run``: HASC's config
    with ``model.name: bpr``, D, ``<model_dir>/bpr_init`` and ``model.hasc.bpr_init_overrides``."""
    bpr = copy.deepcopy(config)
    bpr.model.name = BPR
    bpr.model.bpr.embedding_dim = config.model.hasc.embedding_dim
    # The paper's init is BPR-MF trained with BPR-Opt; HASC's measured recipes start from it (the
    # retrieval objective, BPR-MF's default, is an override away: model.bpr.loss in bpr_init_overrides).
    bpr.model.bpr.loss = "logistic"
    bpr.runtime.model_dir = os.path.join(config.runtime.model_dir, "bpr_init")
    for key, value in config.model.hasc.bpr_init_overrides.items():
        if key.split(".")[0] == "runtime" or key in ("model.name", "model.bpr.embedding_dim"):
            raise ConfigError(f"model.hasc.bpr_init_overrides: {key!r} cannot change (the BPR-MF init must be a "
                              "BPR-MF of HASC's D, in <model_dir>/bpr_init)")
        config_lib.override(bpr, config_lib.parse_set(f"{key}={value}"),
                            source=f"model.hasc.bpr_init_overrides[{key!r}]")
    return bpr


def warm_starts(config):
    c = config.model.hasc
    if not c.init_from_bpr:
        return []
    if c.bpr_run:
        source, train_if_missing = config_lib.read_params(c.bpr_run), False
        source.runtime.model_dir = c.bpr_run
    else:
        source, train_if_missing = bpr_init_config(config), True

    def check(params, run):
        if params.model.bpr.embedding_dim != c.embedding_dim:
            raise ConfigError(f"{run}/params.yaml: the BPR-MF run has model.bpr.embedding_dim "
                              f"{params.model.bpr.embedding_dim}, but HASC's model.hasc.embedding_dim is "
                              f"{c.embedding_dim}; they must be equal for P and W to start from it")

    auxiliary_too = c.auxiliary_init == BPR

    def load(model, bpr_model):
        model.load_bpr_weights(bpr_model, auxiliary_too=auxiliary_too)

    what = "P, W" + (", Q, X" if auxiliary_too else "") + " from BPR-MF"
    return [WarmStart(source=source, load=load, what=what, check=check, train_if_missing=train_if_missing,
                      model=BPR)]
