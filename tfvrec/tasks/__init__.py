"""tfrs tasks: an objective (loss) plus its metrics, passed into a model; `build` is the one factory.

``model.<name>.loss`` names the objective for every model alike:

* ``logistic`` / ``hinge`` — pairwise, over score lists ``[positive, negatives…]`` (`PairwiseRankingTask`
  with a `tfvrec.losses` loss; a model whose lists are a post's tags averages over its pairs:
  CNN-PerMLP's post-wise BPR);
* ``retrieval`` — tfrs' softmax over the global batch's candidates (`RetrievalTask`);
* ``pointwise`` — binary cross-entropy per (query, item) with a learned offset (`PointwiseTask`,
  CDL's TwoNets).

A model declares the objectives it can take (``ModelSpec.losses``); each task says what it
``needs`` from the model (``"scores"``: `ScoredBatch`, ``"vectors"``: `EmbeddedBatch`).
"""
import numpy as np

from tfvrec import losses
from tfvrec.tasks.batches import EmbeddedBatch, ScoredBatch
from tfvrec.tasks.pairwise_ranking import PairwiseAccuracy, PairwiseRankingTask
from tfvrec.tasks.pointwise import PointwiseTask
from tfvrec.tasks.retrieval import RetrievalTask

__all__ = ["PairwiseRankingTask", "PairwiseAccuracy", "PointwiseTask", "RetrievalTask", "ScoredBatch",
           "EmbeddedBatch", "build", "item_frequency"]


def item_frequency(dataset):
    """Share of the training interactions on each item ``[num_items]`` (float32): how often the
    bootstrap draws it as a positive, hence as an in-batch negative (the log-Q of retrieval)."""
    counts = np.bincount(dataset.split("train")["item"].to_numpy(np.int64), minlength=dataset.num_items)
    return (counts / max(1, counts.sum())).astype(np.float32)


def build(section, dataset=None, list_reduction="sum"):
    """The task of a model config section's ``loss`` (with its ``margin`` and ``retrieval`` options).

    ``dataset`` gives the item frequencies of the retrieval objective's log-Q correction;
    ``list_reduction``: ``"mean"`` averages a list's pairwise losses (lists of varying length)."""
    name = section.loss
    if name == "retrieval":
        r = section.retrieval
        frequency = item_frequency(dataset) if r.logq_correction and dataset is not None else None
        return RetrievalTask(temperature=r.temperature, remove_accidental_hits=r.remove_accidental_hits,
                             cross_replica=r.cross_replica, extra_negatives=r.extra_negatives, frequency=frequency)
    if name == "pointwise":
        return PointwiseTask()
    return PairwiseRankingTask(loss=losses.get(name, margin=getattr(section, "margin", 1.0),
                                               list_reduction=list_reduction))
