"""Config section ``model.curatornet`` (Cartagena et al., CuratorNet; SPEC §3).

Plain dataclass (no TensorFlow import): `tfvrec.config` embeds it. The model
module is `tfvrec.models.curatornet`. ``EXPERIMENT_OVERRIDES`` are the registered
experiment ``curatornet``'s defaults for the other sections (the paper's protocol).
"""
import dataclasses


@dataclasses.dataclass
class CuratorNetConfig:
    item_units: int = 200  # shared item tower Φ: Dense(200, selu) → Dense(200, selu)
    profile_units: int = 300  # profile tower: [mean ‖ max] → 300 → 200 → 200 (selu)
    l2: float = 1e-4  # λ


EXPERIMENT_OVERRIDES = {
    "model": {"name": "curatornet"},
    "eval": {"protocols": ["full"], "ks": [20, 100]},
}
