"""Config section ``model.curatornet`` (Cartagena et al., *CuratorNet: Visually-aware
Recommendation of Art Images*).

Plain dataclass (no TensorFlow import): `tfvrec.config` composes it into section
``model``. The model is `tfvrec.models.curatornet.model`. ``EXPERIMENTS`` holds the
registered experiment ``curatornet``: its defaults for the other sections (the
paper's protocol, §4.2).
"""
import dataclasses
from typing import List

from tfvrec.data import content as content_lib
from tfvrec.errors import ConfigError, check_one_of
from tfvrec.objectives import RetrievalConfig

GUIDELINES = ("D1", "D2", "D3", "D4", "D5", "D6")
ITEM_CONTENT = content_lib.ITEM_CONTENT  # parts of item_content, joined by "+"
FEATURE_NORMALIZATION = ("standardize", "l2", "none")
SAMPLING = ("guidelines", "random")


@dataclasses.dataclass
class CuratorNetConfig:
    item_units: int = 200  # shared item tower Φ: Dense(200, selu) → Dense(200, selu)
    profile_units: int = 300  # profile tower: [mean ‖ max] → 300 → 200 → 200 (selu)
    l2: float = 1e-4  # λ on every weight and bias (eq. 6)
    # eq. 6's −ln σ(x_ui − x_uj); "hinge": max(0, margin − (x_ui − x_uj)); "retrieval": tfrs' in-batch
    # softmax over the batch's positives (and each triplet's negative j), `retrieval`'s options.
    loss: str = "logistic"  # wins on posters and ties on UGallery against "retrieval" (docs/models/curatornet.md)
    margin: float = 1.0  # hinge loss only
    # log-Q off by default: the guidelines, not item frequency, decide how often an item is a positive.
    retrieval: RetrievalConfig = dataclasses.field(default_factory=lambda: RetrievalConfig(logq_correction=False))

    # Item content f_i (`tfvrec.data.content.item_content`). "features": the data set's feature set
    # `data.features` (frozen CNN embeddings, the paper's ResNet50 vectors). "tags": the multi-hot
    # vector of the item's tags (posters: genres). "artist_onehot": a one-hot vector of the item's
    # artist, for data sets without image embeddings (UGallery's public part). Parts joined by "+"
    # are concatenated in that order, e.g. "features+tags" = [f_i ‖ genres_i]; a new item given to
    # `tfvrec index` / `tfvrec recommend` carries the same concatenation.
    item_content: str = "features"
    # How the content enters Φ when it includes "features": "none" (as it is, like the paper's ResNet
    # vectors), "l2" (each part to unit length: the vector of single-part content, [f/‖f‖ ‖ t/‖t‖] of
    # features+tags) or "standardize" (per-dimension z-score over the catalogue, every part's
    # dimensions alike; it amplifies low-variance, noisy dimensions and did worse on the synthetic
    # world). Metadata-only content (tags, artist) is never normalised.
    feature_normalization: str = "none"
    # Profiles longer than this keep their most recent items, in training and scoring
    # alike (0 = no cap). UGallery users buy 2-3 items; MovieLens users like up to 1,000+.
    max_profile_items: int = 100

    # Training triplets (§3.5): "guidelines" samples D1-D6 uniformly across guidelines,
    # "random" is the paper's ablation (P_u \ {i}, i, uniform unobserved j).
    sampling: str = "guidelines"
    guidelines: List[str] = dataclasses.field(default_factory=lambda: list(GUIDELINES))
    num_triplets: int = 10_000_000  # |D_S|, distinct triplets per pass ("about 10 million")
    sampler_chunk: int = 16384  # triplets drawn, hashed and deduplicated at a time
    # A folder of D_S records written by `tfvrec triplets` (tfvrec.triplets): the trainer streams
    # them instead of sampling in process (the same batches). Empty: sample in process.
    triplets_path: str = ""

    # Visual clusters (§3.5): PCA → cluster_dims, k-means with num_clusters, best
    # silhouette of cluster_restarts runs. silhouette_sample > 0 scores each run on a
    # random subset of that many items (exact silhouette is O(n²)).
    cluster_dims: int = 200
    num_clusters: int = 100
    cluster_restarts: int = 20
    silhouette_sample: int = 0


EXPERIMENTS = {"curatornet": {
    "model": {"name": "curatornet"},
    # Adam on dense towers (no embedding tables, so no lazy updates needed).
    "trainer": {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 512,
                "validation_protocol": "full", "validation_metric": "auc", "validation_max_users": 1000},
    # Paper §4.2: test = last basket; rank every item not in the user's training history.
    "eval": {"protocols": ["full"], "ks": [20, 100], "table_metrics": ["recall", "precision", "ndcg", "auc"],
             "baselines": ["oracle", "visrank", "vbpr", "random"]},
}}


def check(config, source="<config>"):
    """Value checks of ``model.curatornet`` (the generic loader checks types only)."""
    c = config.model.curatornet
    parts = content_lib.content_parts(c.item_content, f"{source}: key 'model.curatornet.item_content'")
    check_one_of(source, "model.curatornet", (("feature_normalization", c.feature_normalization, FEATURE_NORMALIZATION),
                                              ("sampling", c.sampling, SAMPLING)))
    unknown = [g for g in c.guidelines if g not in GUIDELINES]
    if unknown or not c.guidelines:
        raise ConfigError(f"{source}: key 'model.curatornet.guidelines' must list some of {list(GUIDELINES)}, "
                          f"got {c.guidelines}")
    for key in ("item_units", "profile_units", "num_triplets", "sampler_chunk", "num_clusters", "cluster_dims",
                "cluster_restarts"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{source}: key 'model.curatornet.{key}' must be ≥ 1, got {getattr(c, key)}")
    if c.l2 < 0 or c.max_profile_items < 0:
        raise ConfigError(f"{source}: keys 'model.curatornet.l2' and 'model.curatornet.max_profile_items' "
                          "must be ≥ 0")
    if "features" in parts and not config.data.features:
        raise ConfigError(f"{source}: model.curatornet.item_content uses 'features' but data.features is empty; "
                          "name a feature set of the data set (features/<name>.npz) or use metadata content "
                          "(item_content: tags or artist_onehot)")
