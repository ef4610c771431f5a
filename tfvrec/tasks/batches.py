"""What a model hands its task for one training batch: scored lists or embedded queries and candidates.

A model writes ``training_scores`` (every model) and, when it can take tfrs' retrieval objective,
``training_vectors``; `tfvrec.models.base.RecommenderModel.compute_loss` asks for the one its task
``needs`` and hands it over. The L2 term rides along (``l2 × mean(squared_norms) + penalty``), so
TensorBoard shows it apart from the ranking loss for every model.
"""
import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class ScoredBatch:
    """Score lists ``[B, L]``: the positive(s) first, labelled by ``labels`` ``[B, L]`` (None: ``[1, 0, …, 0]``,
    one positive then negatives; −1 marks padding, as in a post's variable number of tags)."""
    scores: Any
    labels: Optional[Any] = None
    squared_norms: Optional[Any] = None  # [B]: ‖Θ‖² of each example's own parameters
    l2: float = 0.0
    penalty: Optional[Any] = None  # a scalar added as it is (already scaled for the replicas)


@dataclasses.dataclass
class EmbeddedBatch:
    """Queries ``[B, d]``, their positives ``[B, d]`` (ids ``[B]``) and sampled negatives ``[B, n, d]``
    (ids ``[B, n]``): the retrieval objective scores every query against every candidate of the batch."""
    query: Any
    positive: Any
    positive_ids: Any
    negatives: Optional[Any] = None
    negative_ids: Optional[Any] = None
    squared_norms: Optional[Any] = None
    l2: float = 0.0
    penalty: Optional[Any] = None
