"""Config section ``model.vbpr`` (He & McAuley, *VBPR: Visual Bayesian Personalized Ranking from
Implicit Feedback*, AAAI 2016). TensorFlow-free."""
import dataclasses
from typing import List

from tfvrec.data import content as content_lib
from tfvrec.errors import ConfigError, check_one_of

SAMPLING = ("bootstrap", "guidelines")
FEATURE_NORMALIZATION = ("none", "standardize")


@dataclasses.dataclass
class VBPRConfig:
    """x̂_ui = β_i + γ_uᵀγ_i + θ_uᵀ(E f_i) + β'ᵀ f_i (eq. 2; α and β_u cancel under BPR).

    CuratorNet's paper (§4.3) gives VBPR "the same embedding size as CuratorNet (200)": here
    100 non-visual factors γ plus 100 visual factors θ.
    """
    latent_dim: int = 100  # γ_u, γ_i
    visual_dim: int = 100  # θ_u and the projection E: content → visual factors
    l2: float = 1e-4  # λ_Θ on the parameters a batch touches, and on E, β'
    init_stddev: float = 0.01
    loss: str = "logistic"  # BPR-Opt's −ln σ(x̂_ui − x̂_uj); or "hinge"
    margin: float = 1.0  # hinge only
    # f_i (`tfvrec.data.content.item_content`): "features" (data.features, frozen CNN embeddings), "tags"
    # (multi-hot; posters: genres), "artist_onehot", or parts joined by "+" and concatenated in that order
    # ("features+tags"); a new item carries the same concatenation.
    item_content: str = "features"
    # "standardize": per-dimension z-score of f_i over the catalogue, every part's dimensions (an affine
    # change of f_i, the same model class, better conditioned for Adam); "none": as they are. Applies when
    # the content includes "features".
    feature_normalization: str = "none"
    # Training pairs: "bootstrap" — LearnBPR's uniform (u, i) with uniform unobserved j (the VBPR paper);
    # "guidelines" — the triplets of CuratorNet's sampling guidelines `guidelines` (the CuratorNet paper's
    # VBPR setting, §5.1: D3 + D4), drawn by the sampler registered under that name, with its own section's
    # clusters and profiles.
    sampling: str = "bootstrap"
    guidelines: List[str] = dataclasses.field(default_factory=lambda: ["D3", "D4"])
    # guidelines: |D_S|, the distinct triplets of one pass of the sampler, which the run trains on once,
    # spread over its trainer.epochs (unless trainer.steps_per_epoch says otherwise): a second pass would
    # repeat the same triplets.
    num_triplets: int = 2_000_000


# The trainer as CuratorNet's VBPR baseline has always had it (Adam, 1e-3, batches of 512, 10 epochs). Dense Adam,
# not lazy: on the synthetic world's validation split (curatornet_synthetic, D3 + D4, 1M triplets) it reaches
# AUC 0.872 against lazy Adam's 0.868.
EXPERIMENTS = {"vbpr": {"model": {"name": "vbpr"},
                        "trainer": {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 512, "epochs": 10}}}


def check(config, source="<config>"):
    c = config.model.vbpr
    parts = content_lib.content_parts(c.item_content, f"{source}: key 'model.vbpr.item_content'")
    check_one_of(source, "model.vbpr", (("sampling", c.sampling, SAMPLING),
                                        ("feature_normalization", c.feature_normalization, FEATURE_NORMALIZATION)))
    for key in ("latent_dim", "visual_dim", "num_triplets"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{source}: key 'model.vbpr.{key}' must be ≥ 1, got {getattr(c, key)}")
    if "features" in parts and not config.data.features and config.model.name == "vbpr":
        raise ConfigError(f"{source}: model.vbpr.item_content uses 'features' but data.features is empty; name a "
                          "feature set of the data set (features/<name>.npz) or use metadata content "
                          "(item_content: tags or artist_onehot)")
