"""The training objectives a model's config section can choose (TensorFlow-free).

``model.<name>.loss``:

* ``logistic`` — pairwise −ln σ(s⁺ − s⁻) over sampled negatives (BPR-Opt; the papers' own);
* ``hinge`` — pairwise max(0, m − (s⁺ − s⁻)), ``margin`` = m;
* ``retrieval`` — tfrs' retrieval objective (`tfvrec.tasks.retrieval`): a softmax of each
  query over the positives of the whole global batch (in-batch negatives, gathered across
  replicas) plus the example's sampled negatives, with the options of `RetrievalConfig`;
* ``pointwise`` — binary cross-entropy per (query, item) with a learned offset (CDL's TwoNets).

The tasks themselves are `tfvrec.tasks` (`tfvrec.tasks.build`).
"""
import dataclasses

PAIRWISE = ("logistic", "hinge")
LOSSES = PAIRWISE + ("retrieval", "pointwise")  # each model takes those its ModelSpec.losses names


@dataclasses.dataclass
class RetrievalConfig:
    """Options of ``loss: retrieval`` (tfrs ``tasks.Retrieval``)."""
    temperature: float = 1.0  # softmax temperature (scores / temperature)
    # Subtract log Q(i) of each candidate's sampling probability (Yi et al., RecSys 2019), so
    # popular items, more often in-batch negatives, are not pushed down for being sampled.
    logq_correction: bool = True
    remove_accidental_hits: bool = True  # an in-batch negative that is the query's positive item is masked
    extra_negatives: bool = True  # the examples' sampled negatives join the candidates as well
    cross_replica: bool = True  # gather candidates across replicas: N replicas see what one device sees
