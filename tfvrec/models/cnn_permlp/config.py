"""Config section ``model.cnn_permlp`` (Nguyen, Wistuba, Grabocka, Drumond, Schmidt-Thieme,
*Personalized Deep Learning for Tag Recommendation*, PAKDD 2017). TensorFlow-free.

One section describes CNN-PerMLP and the baselines of the paper's comparison that are
trained (the untrained ones, MP and MP-u, are counted in every evaluation):

- ``features``: what the personalized layer sees, ``cnn`` (the network of Table 2 on an
  image patch), ``histogram`` (a 64-bin colour histogram of the patch: CH-PerMLP) or
  ``embedding`` (a learned vector per item, for tag data without images: Last.fm);
- ``personalized``: false drops the user term of eq. 6 (the non-personalized CNN);
- ``architecture``: ``permlp`` (eqs. 6-7) or ``pitf`` (Rendle & Schmidt-Thieme 2010).
"""
import dataclasses
from typing import List

from tfvrec.errors import ConfigError

FEATURES = ("cnn", "histogram", "embedding")
ARCHITECTURES = ("permlp", "pitf")
CNN_SETTINGS = ("nus_wide", "flickr_ptr", "custom")
UNSEEN = ("zero", "mean", "init")  # fallbacks for rows without a training post (layers.UNSEEN)
# Table 2: (kernel, stride) of the three convolutions and the two max-pool sizes.
TABLE_2 = {
    "nus_wide": {"patch_size": 75, "conv_kernels": [6, 6, 2], "conv_strides": [3, 2, 1], "pool_sizes": [2, 2]},
    "flickr_ptr": {"patch_size": 50, "conv_kernels": [5, 5, 3], "conv_strides": [2, 1, 1], "pool_sizes": [2, 3]},
}


@dataclasses.dataclass
class CNNPerMLPConfig:
    architecture: str = "permlp"
    features: str = "cnn"
    personalized: bool = True
    # The CNN (Table 2). "nus_wide" / "flickr_ptr" fix kernels, strides, pools and patch size
    # (75 / 50); "custom" takes the four keys below as given.
    cnn: str = "nus_wide"
    patch_size: int = 75
    conv_kernels: List[int] = dataclasses.field(default_factory=lambda: [6, 6, 2])
    conv_strides: List[int] = dataclasses.field(default_factory=lambda: [3, 2, 1])
    pool_sizes: List[int] = dataclasses.field(default_factory=lambda: [2, 2])
    filters: List[int] = dataclasses.field(default_factory=lambda: [10, 30, 128])
    # Side of the aspect-preserving square the patches are cut from (eq. 2); 0: 4/3 of the patch.
    square_size: int = 0
    num_patches: int = 3  # Q: 3 = top-left, centre, bottom-right; 1 = centre only
    hidden_units: int = 128  # the predictor's hidden layer (eq. 7)
    embedding_dim: int = 128  # features=embedding: the item vector z_i; architecture=pitf: factor size
    histogram_bins: int = 4  # per channel: 4 → 64 colour bins (CH-PerMLP)
    negatives: int = 100  # N tags sampled from the rest for each post (eq. 8)
    # Eq. 8's pairwise loss, averaged over each post's (t+, t−) pairs: "logistic" (post-wise BPR) or "hinge".
    loss: str = "logistic"
    margin: float = 1.0  # hinge only
    # §4.2's L2 regularisation λ (the paper's grid {0, 1e-5, 1e-4}): PITF on the factors a batch touches
    # (tag factors once per step, / |T|); the networks on the user / item rows a post touches and on
    # every other weight but the biases once per step. 0: none.
    l2: float = 0.0
    init_stddev: float = 0.01
    # What a row without a training post is read as at scoring time (training never sees one):
    # "zero", "mean" (of the trained rows) or "init" (its random initial value, untouched by
    # training). unseen_item: the learned item vector of features: embedding (a new Last.fm
    # artist) and PITF's item factors; chosen on the Last.fm holdout (docs/models/cnn_permlp.md).
    # unseen_user: eq. 6's user row V κ_u and PITF's user factors; a user unknown to the data set
    # (tfvrec tags, the export) always gets the mean row, whatever the key, except with "zero".
    unseen_item: str = "zero"
    unseen_user: str = "mean"
    # The posts (user, item, tags) and the protocol (§4.1).
    min_tag_count: int = 5  # tags used fewer times (over all posts) are dropped
    test_posts: int = 0  # > 0: this many test posts per user (NUS-WIDE: 2) ...
    test_fraction: float = 0.2  # ... else this share of each user's posts (Flickr-PTR: 20%)
    holdout_fraction: float = 0.1  # share of each user's training posts held out for validation
    min_user_posts: int = 2  # users with fewer posts keep them all in training
    split_seed: int = 0


EXPERIMENTS = {
    # CNN-PerMLP with the NUS-WIDE network (75×75 patches).
    "cnn_permlp": {"model": {"name": "cnn_permlp"},
                   "trainer": {"validation_split": "train_holdout", "validation_metric": "f1@5",
                               "optimizer": "adam", "batch_size": 64, "learning_rate": 1e-3}},
    # The Flickr-PTR network (50×50 patches).
    "cnn_permlp_50": {"model": {"name": "cnn_permlp", "cnn_permlp": dict(cnn="flickr_ptr", **TABLE_2["flickr_ptr"])},
                      "trainer": {"validation_split": "train_holdout", "validation_metric": "f1@5",
                                  "optimizer": "adam", "batch_size": 64, "learning_rate": 1e-3}},
}


def _base(**section):
    return {"model": {"name": "cnn_permlp", "cnn_permlp": section},
            "trainer": {"validation_split": "train_holdout", "validation_metric": "f1@5", "optimizer": "adam",
                        "batch_size": 64, "learning_rate": 1e-3}}


EXPERIMENTS.update({
    "cnn_permlp_cnn": _base(personalized=False),  # the non-personalized CNN baseline
    "cnn_permlp_ch": _base(features="histogram"),  # CH-PerMLP
    "cnn_permlp_pitf": _base(architecture="pitf", features="embedding", embedding_dim=64, l2=1e-4),
    "cnn_permlp_embedding": _base(features="embedding"),  # no images: a learned item vector for z
})


def resolved(section):
    """The section with a named Table 2 setting applied (kernels, strides, pools, patch size)."""
    if section.cnn in TABLE_2:
        return dataclasses.replace(section, **TABLE_2[section.cnn])
    return section


def square_side(section):
    return section.square_size or (section.patch_size * 4) // 3


def feature_map_side(section):
    """Side of the CNN's last feature map (`model.cnn_features`): valid convolutions,
    ⌊(n − k) / s⌋ + 1 (0 when the kernel no longer fits), and pools keeping a last partial
    block, ⌈n / p⌉. m = side² × filters[2]; Table 2 gives side 1, m = 128, in both settings."""
    c = resolved(section)
    side = c.patch_size
    for n in range(3):
        side = (side - c.conv_kernels[n]) // c.conv_strides[n] + 1 if side >= c.conv_kernels[n] else 0
        if n < 2:
            side = -(-side // c.pool_sizes[n])
    return side


def check(config, source="<config>"):
    c = config.model.cnn_permlp

    def bad(key, message):
        raise ConfigError(f"{source}: key 'model.cnn_permlp.{key}' {message}")

    for key, choices in (("architecture", ARCHITECTURES), ("features", FEATURES), ("cnn", CNN_SETTINGS),
                         ("unseen_item", UNSEEN), ("unseen_user", UNSEEN)):
        if getattr(c, key) not in choices:
            bad(key, f"must be one of {list(choices)}, got {getattr(c, key)!r}")
    if c.architecture == "pitf" and c.features != "embedding":
        bad("features", "must be 'embedding' with architecture 'pitf' (PITF learns a vector per item)")
    if c.cnn == "custom":
        if len(c.conv_kernels) != 3 or len(c.conv_strides) != 3 or len(c.pool_sizes) != 2:
            bad("conv_kernels", "(with conv_strides, pool_sizes): need 3 kernels, 3 strides and 2 pool sizes")
        if min(c.conv_kernels + c.conv_strides + c.pool_sizes) < 1:
            bad("conv_kernels", "(with conv_strides, pool_sizes): every size must be ≥ 1")
    if len(c.filters) != 3 or min(c.filters) < 1:
        bad("filters", f"must list 3 positive kernel counts (the paper: [10, 30, 128]), got {c.filters}")
    r = resolved(c)
    if r.patch_size < 4:
        bad("patch_size", f"must be ≥ 4, got {r.patch_size}")
    if r.features == "cnn" and r.architecture == "permlp" and min(r.conv_kernels + r.conv_strides + r.pool_sizes) >= 1 \
            and feature_map_side(c) < 1:
        key = "conv_kernels" if c.cnn == "custom" else "cnn"
        bad(key, f"leaves no feature map on {r.patch_size} × {r.patch_size} patches (valid convolutions with kernels "
                 f"{r.conv_kernels}, strides {r.conv_strides}, pools {r.pool_sizes}): use smaller kernels or "
                 "strides, or a larger model.cnn_permlp.patch_size")
    if c.square_size and c.square_size < r.patch_size:
        bad("square_size", f"must be 0 or ≥ patch_size ({r.patch_size}), got {c.square_size}")
    if c.num_patches not in (1, 3):
        bad("num_patches", f"must be 1 (centre) or 3 (top-left, centre, bottom-right), got {c.num_patches}")
    for key in ("hidden_units", "embedding_dim", "negatives", "histogram_bins", "min_tag_count", "min_user_posts"):
        if getattr(c, key) < 1:
            bad(key, f"must be ≥ 1, got {getattr(c, key)}")
    if c.test_posts < 0:
        bad("test_posts", f"must be ≥ 0, got {c.test_posts}")
    for key in ("test_fraction", "holdout_fraction"):
        if not 0 <= getattr(c, key) < 1:
            bad(key, f"must be in [0, 1), got {getattr(c, key)}")
    if config.model.name == "cnn_permlp":
        metric = config.trainer.validation_metric
        prefix, _, k = metric.partition("@")
        if prefix not in ("f1", "precision", "recall") or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"{source}: key 'trainer.validation_metric' must be f1@K, precision@K or recall@K "
                              f"for cnn_permlp (a tag recommender), got {metric!r}")
