"""Config section ``model.hasc`` (Wu et al., *Explainable Social Contextual Image
Recommendation with Hierarchical Attention*).

Plain dataclass (no TensorFlow import): `tfvrec.config` composes it into section
``model``. The model is `tfvrec.models.hasc.model`. ``EXPERIMENTS`` holds the
registered experiment ``hasc``: its defaults for the other sections (the paper's
protocol, §4.1).

The paper's ablations are config switches (Wu et al., Tables 3 and 4):

* ``aspects``: any non-empty subset of ``upload`` (U), ``social`` (S), ``creator`` (C);
* ``attention``: ``att`` (learned α, β, γ) or ``avg`` (uniform: the SVD++-like model);
* ``attention_inputs``: ``[base]`` or ``[base, auxiliary]`` embeddings feed the
  attention nets; visual input is on when ``data.features`` names a feature set.
"""
import dataclasses
from typing import Dict, List

from tfvrec.errors import ConfigError

ASPECTS = ("upload", "social", "creator")
ATTENTION_KINDS = ("att", "avg")
ATTENTION_INPUTS = ("base", "auxiliary")
AUXILIARY_INITS = ("random", "bpr")


@dataclasses.dataclass
class HASCConfig:
    embedding_dim: int = 15  # D, the paper's best of {10, 15, 20, 30}
    attention_dim: int = 20  # width of each attention net's hidden layer
    l2: float = 0.01  # λ on P, Q, W, X (and the item bias) of each training example
    loss: str = "logistic"  # eq. 13 with its minus-log: −ln σ(R̂_ai − R̂_aj); or "hinge"
    margin: float = 1.0  # hinge loss only
    aspects: List[str] = dataclasses.field(default_factory=lambda: list(ASPECTS))
    attention: str = "att"
    attention_inputs: List[str] = dataclasses.field(default_factory=lambda: list(ATTENTION_INPUTS))
    # Neighbour lists are capped per user (a fixed random subset, seeded by runtime.seed):
    # on Flickr F.S the caps keep every list of 97% (uploads) / 98% (follows) of users whole.
    max_uploads: int = 50  # |L_a| cap
    max_followees: int = 100  # |S_a| cap
    init_stddev: float = 0.01  # Q, X (and P, W without BPR initialisation)
    use_item_bias: bool = True  # b_i added to eq. 3; initialised from BPR's item bias
    # P, W (and b) start from a trained BPR-MF (the paper, §4.1). ``bpr_run`` is its run
    # directory; empty: train one first into <model_dir>/bpr_init with the same data,
    # trainer and runtime sections, model.bpr for λ and init, and embedding_dim = D.
    init_from_bpr: bool = True
    bpr_run: str = ""
    # Overrides of the BPR-MF init run's config when it is trained here (as ``--set``:
    # "trainer.learning_rate": "0.001"), e.g. to train it at its own learning rate.
    bpr_init_overrides: Dict[str, str] = dataclasses.field(default_factory=dict)
    # Q and X: "random" (small values, the paper) or "bpr" (Q ← BPR's user factors, X ← its
    # item factors: each aspect starts as the neighbourhood model of eq. 4).
    auxiliary_init: str = "random"


EXPERIMENTS = {"hasc": {
    "model": {"name": "hasc"},
    "trainer": {"negatives_per_positive": 5, "batch_size": 512},
    "eval": {"protocols": ["sampled:100", "sampled:1000"], "ks": [5, 10], "repeats": 10},
}}


def check(config, source="<config>"):
    """Value checks of ``model.hasc`` (the generic loader checks types only)."""
    c = config.model.hasc
    bad = [a for a in c.aspects if a not in ASPECTS]
    if bad or not c.aspects:
        raise ConfigError(f"{source}: key 'model.hasc.aspects': expected a non-empty subset of {list(ASPECTS)}, "
                          f"got {c.aspects}")
    if c.attention not in ATTENTION_KINDS:
        raise ConfigError(f"{source}: key 'model.hasc.attention' must be one of {list(ATTENTION_KINDS)}, "
                          f"got {c.attention!r}")
    bad = [a for a in c.attention_inputs if a not in ATTENTION_INPUTS]
    if bad or not c.attention_inputs:
        raise ConfigError(f"{source}: key 'model.hasc.attention_inputs': expected a non-empty subset of "
                          f"{list(ATTENTION_INPUTS)}, got {c.attention_inputs}")
    if c.auxiliary_init not in AUXILIARY_INITS:
        raise ConfigError(f"{source}: key 'model.hasc.auxiliary_init' must be one of {list(AUXILIARY_INITS)}, "
                          f"got {c.auxiliary_init!r}")
    if c.auxiliary_init == "bpr" and not c.init_from_bpr:
        raise ConfigError(f"{source}: model.hasc.auxiliary_init 'bpr' needs model.hasc.init_from_bpr: true")
    for key in ("embedding_dim", "attention_dim", "max_uploads", "max_followees"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{source}: key 'model.hasc.{key}' must be ≥ 1, got {getattr(c, key)}")
