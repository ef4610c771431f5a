"""Config section ``model.hasc`` (Wu et al., HASC; SPEC §4).

Plain dataclass (no TensorFlow import): `tfvrec.config` embeds it. The model
module is `tfvrec.models.hasc`. ``EXPERIMENT_OVERRIDES`` are the registered
experiment ``hasc``'s defaults for the other sections (the paper's protocol).
"""
import dataclasses


@dataclasses.dataclass
class HASCConfig:
    embedding_dim: int = 15  # D
    attention_dim: int = 20
    l2: float = 0.01  # λ on P, Q, W, X
    bpr_run: str = ""  # run directory of a trained BPR-MF whose P and W initialise HASC


EXPERIMENT_OVERRIDES = {
    "model": {"name": "hasc"},
    "trainer": {"negatives_per_positive": 5, "batch_size": 512},
    "eval": {"protocols": ["sampled:100", "sampled:1000"], "ks": [5, 10], "repeats": 10},
}
