"""Config section ``model.bpr`` (BPR-MF; Rendle et al., UAI 2009). TensorFlow-free."""
import dataclasses

from tfvrec.errors import ConfigError
from tfvrec.objectives import RetrievalConfig


@dataclasses.dataclass
class BPRConfig:
    """BPR-MF: x_ui = <p_u, q_i> + b_i."""
    embedding_dim: int = 64
    l2: float = 1e-5  # λ on the embeddings touched by a batch (and the item bias)
    use_item_bias: bool = True
    init_stddev: float = 0.01
    # "retrieval" (default): tfrs' in-batch softmax (tfvrec.objectives), with `retrieval`'s options —
    # with Adam on Flickr F.S it beats BPR-Opt with Adam by +5.8% HR@5 at N=100 (0.4096 vs 0.3870) and
    # +25% at N=1000 (docs/benchmarks.md, retrieval_objective); "logistic": BPR-Opt's −ln σ(x_ui − x_uj),
    # which with LearnBPR's SGD and a strong λ scores highest at N=100 (configs/bpr_flickr_fs.yaml);
    # "hinge": max(0, margin − (x_ui − x_uj)).
    loss: str = "retrieval"
    margin: float = 1.0  # hinge loss only
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)


# The default experiment: every other section at its defaults.
EXPERIMENTS = {"bpr": {"model": {"name": "bpr"}}}


def check(config, source="<config>"):
    c = config.model.bpr
    if c.embedding_dim < 1:
        raise ConfigError(f"{source}: key 'model.bpr.embedding_dim' must be ≥ 1, got {c.embedding_dim}")
    if c.l2 < 0 or c.init_stddev < 0:
        raise ConfigError(f"{source}: keys 'model.bpr.l2' and 'model.bpr.init_stddev' must be ≥ 0")
