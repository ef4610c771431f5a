"""Config section ``model.cdl`` (Lei et al., *Comparative Deep Learning of Hybrid
Representations for Image Recommendation*, CVPR 2016). TensorFlow-free.

Named experiments: ``cdl`` (the CPU-sized tower, the default), ``cdl_paper`` (the paper's
AlexNet-size tower: 256 px, 4096-wide FC layers, d = 1024; for GPUs) and ``cdl_pretrained``
(a frozen EfficientNet-Lite0 backbone under trainable FC layers).
"""
import dataclasses
from typing import List

from tfvrec.errors import ConfigError
from tfvrec.objectives import RetrievalConfig

BACKBONES = ("none", "efficientnet_lite0")
TAG_VECTORS = ("ppmi_svd", "file")


@dataclasses.dataclass
class CDLConfig:
    """The triple network: image tower π(I), user tower φ(U), weighted distance D (§3-§4, eq. 1-5)."""
    # Image tower π (§4, Fig. 2): 5 convolutions (max-pool after the 1st, 2nd and 5th), then FC layers
    # with dropout, then the linear output layer of width `embedding_dim` (d).
    image_size: int = 96
    conv_filters: List[int] = dataclasses.field(default_factory=lambda: [32, 64, 96, 96, 64])
    conv_kernels: List[int] = dataclasses.field(default_factory=lambda: [7, 5, 3, 3, 3])
    conv_stride: int = 2  # stride of the first convolution (AlexNet: 4)
    fc_units: List[int] = dataclasses.field(default_factory=lambda: [256, 256])
    embedding_dim: int = 128  # d, the width of π(I) and φ(U)
    dropout: float = 0.5  # after each hidden FC layer of the image tower
    batch_norm: bool = False  # not in the paper; helps small CPU budgets
    # "efficientnet_lite0": π starts from the frozen ImageNet EfficientNet-Lite0 (pooled 1280-d
    # features, computed once per catalogue image) under trainable FC layers `fc_units` → d.
    backbone: str = "none"
    # User tower φ (§4, Fig. 2's FC2_1..FC2_4): the hidden ReLU FC layers from the user vector
    # (`num_clusters`-d); a last linear FC layer of width d follows, so the tower has
    # len(user_units) + 1 Dense layers. The paper's is four layers, 1024 wide (`cdl_paper`). The
    # default keeps the paper's depth at 128 wide: on a 64-cluster user vector and d ≤ 128 that
    # is ~50k weights, nothing next to the image tower's cost, and on the synthetic worlds it
    # trained as well as one linear layer or better (docs/models/cdl.md); the paper's width
    # matches its d = 1024, which the CPU configs shrink to 64-128 alike.
    user_units: List[int] = dataclasses.field(default_factory=lambda: [128, 128, 128])
    # Distance net (§4): (φ − π)² → dropout → FC with non-negative weights → D.
    distance_dropout: float = 0.5
    # Objective (tfvrec.tasks): CDL's comparison o = D(U, I+) − D(U, I−) with "logistic" = eq. 5's
    # cross-entropy softplus(o), or "hinge" = max(0, margin + o); "pointwise" is the TwoNets baseline,
    # (U, I, 1/0) with p = σ(b − D), b learned, and binary cross-entropy; "retrieval": tfrs' softmax of
    # each user over −D to the batch's positives and the triplets' negatives (with `retrieval`'s
    # options), the distance dropout off.
    loss: str = "logistic"
    margin: float = 1.0  # hinge only
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    augment: bool = True  # random flip and brightness of training images (pixel towers only)

    # User vectors (§5): tag vectors → k-means into `num_clusters` → normalised counts.
    num_clusters: int = 64  # C (paper: 1024)
    tag_vectors: str = "ppmi_svd"  # learned from the data's tag–item co-occurrence, or "file"
    tag_vector_file: str = ""  # tag_vectors: file — a text file "tag v1 v2 ..." per line
    tag_vector_dim: int = 32
    kmeans_iterations: int = 50
    use_own_tags: bool = True  # the user's own post tags count besides their images' tags

    # Triplets (§5): per user per epoch; negatives avoid the user's, their friends' and their
    # groups' likes and every interest tag of the user (relaxed, logged, below `min_negatives`).
    triplets_per_user: int = 20
    exclude_friends: bool = True
    exclude_groups: bool = True
    exclude_interest_tags: bool = True
    min_negatives: int = 50
    # A folder of triplet records written by `tfvrec triplets` (tfvrec.triplets): the trainer
    # streams them instead of sampling in process (the same batches). Empty: sample in process.
    triplets_path: str = ""

    # Images that cannot be read: stop with the file named (false), or skip and count them (true).
    skip_bad_images: bool = False


# Fig. 2 (§4): the image tower is AlexNet-like (FC1_1, FC1_2 4096-wide, FC1_3 = d = 1024); the user
# tower is four FC layers FC2_1..FC2_4 from the 1024-cluster user vector to d = 1024. The hidden
# widths of FC2_1..FC2_3 are printed only in the figure; we take the width of its input and output
# (1024) for every layer.
_PAPER_TOWER = {"image_size": 256, "conv_filters": [96, 256, 384, 384, 256], "conv_kernels": [11, 5, 3, 3, 3],
                "conv_stride": 4, "fc_units": [4096, 4096], "embedding_dim": 1024, "num_clusters": 1024,
                "user_units": [1024, 1024, 1024]}
_CDL_TRAINER = {"optimizer": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "weight_decay": 5e-4,
                "batch_size": 128, "epochs": 10, "validation_split": "train_holdout",
                "validation_protocol": "candidates:100", "validation_metric": "recall@20",
                "early_stopping_patience": 3}
# §6.1.1: 20 hidden favourites among 100 candidates, P@K and R@K for K = 1..20.
_CDL_EVAL = {"protocols": ["candidates:100"], "ks": [1, 5, 10, 20], "table_metrics": ["precision", "recall"],
             "baselines": ["random"]}

EXPERIMENTS = {
    "cdl": {"model": {"name": "cdl"}, "trainer": _CDL_TRAINER, "eval": _CDL_EVAL},
    "cdl_paper": {"model": {"name": "cdl", "cdl": _PAPER_TOWER}, "trainer": _CDL_TRAINER, "eval": _CDL_EVAL},
    "cdl_pretrained": {"model": {"name": "cdl", "cdl": {"backbone": "efficientnet_lite0", "fc_units": [512],
                                                        "augment": False}},
                       "trainer": _CDL_TRAINER, "eval": _CDL_EVAL},
}


def check(config, source="<config>"):
    c = config.model.cdl

    def fail(key, message):
        raise ConfigError(f"{source}: key 'model.cdl.{key}' {message}")
    for key, value, choices in (("backbone", c.backbone, BACKBONES), ("tag_vectors", c.tag_vectors, TAG_VECTORS)):
        if value not in choices:
            fail(key, f"must be one of {list(choices)}, got {value!r}")
    if len(c.conv_filters) != 5 or len(c.conv_kernels) != 5:
        fail("conv_filters", f"and 'model.cdl.conv_kernels' need 5 entries each (the paper's 5 convolutions), got "
                             f"{len(c.conv_filters)} and {len(c.conv_kernels)}")
    for key in ("image_size", "conv_stride", "embedding_dim", "num_clusters", "tag_vector_dim", "kmeans_iterations",
                "triplets_per_user", "min_negatives"):
        if getattr(c, key) < 1:
            fail(key, f"must be ≥ 1, got {getattr(c, key)}")
    for key in ("conv_filters", "conv_kernels", "fc_units", "user_units"):
        if any(v < 1 for v in getattr(c, key)):
            fail(key, f"entries must be ≥ 1, got {getattr(c, key)}")
    if c.image_size < 16 and c.backbone == "none":
        fail("image_size", f"must be ≥ 16 for the convolutional tower, got {c.image_size}")
    for key in ("dropout", "distance_dropout"):
        if not 0 <= getattr(c, key) < 1:
            fail(key, f"must be in [0, 1), got {getattr(c, key)}")
    if c.tag_vectors == "file" and not c.tag_vector_file:
        fail("tag_vector_file", "is empty but model.cdl.tag_vectors is 'file'; name the embedding file")
