"""Ranking metrics over a batch of users, vectorised in NumPy.

Every function takes

* ``scores``   float ``[B, C]``: the model's score for each of a user's C candidates;
* ``relevant`` bool  ``[B, C]``: which candidates are held-out positives (a user may
  have several, e.g. CuratorNet's last purchase basket, Cartagena et al. §4.2);
* ``k``        int >= 1: the cut-off;
* ``valid``    optional bool ``[B, C]``: False marks padding, which is neither ranked
  nor counted (rows of a batch can hold different numbers of candidates);

and returns one value per user, float ``[B]``.

Definitions (binary relevance; ``rank`` is 0-based; ``n_rel`` = relevant valid candidates):

* ``hit_rate_at_k``  1 if at least one relevant item ranks in the top k (HASC's HR@K, Wu et al. §4.1).
* ``precision_at_k`` hits@k / k. The divisor is k even when fewer than k candidates exist,
  as in ranx and trec_eval, so a short list cannot inflate precision.
* ``recall_at_k``    hits@k / n_rel.
* ``f1_at_k``        harmonic mean of the two above (0 when both are 0).
* ``ndcg_at_k``      sum over relevant items in the top k of 1/log2(rank + 2), divided by the
  ideal DCG, i.e. the same sum over ranks 0 .. min(k, n_rel) - 1 (Järvelin & Kekäläinen 2002;
  with binary relevance this equals the Burges 2^rel - 1 variant).
* ``auc``            fraction of (relevant, irrelevant) pairs where the relevant item scores
  higher; a tied pair counts 0.5 (CuratorNet's AUC, Cartagena et al. §4.2). It ignores ``k``.

A user with no relevant valid candidate gets NaN from every metric (there is nothing to
find, and a 0 would silently drag averages down); ``auc`` is also NaN for a user with no
irrelevant valid candidate. The protocols never pass such users.

Ties
----
Tied scores must not favour the relevant item: a model that scores everything equal has
to look like a random ranking, not a perfect one. The top-k metrics therefore break ties
with a *deterministic random* order: among equal scores, candidates are ordered by a
pseudo-random key, so the expected metric of a tie group is that of a random permutation
of it. The keys come from ``seed`` (``numpy.random.default_rng(seed)``, one key per cell of
the ``[B, C]`` batch, drawn only if some relevant item is tied), so every metric function
called with the same seed sees the same order and the metrics stay mutually consistent
(e.g. f1 agrees with precision and recall).
The protocols instead derive the key from (seed, user, item) with :func:`pair_keys`, which
makes results independent of batch size and of the order of the candidate columns.
``auc`` needs no tie-break: its 0.5 per tied pair is already the expectation over it.
"""
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np

from tfvrec.hashing import mix64

METRIC_PREFIXES = ("hr", "ndcg", "precision", "recall", "f1")

# tie_keys(rows, columns) -> one sortable key per (row, column) cell of the batch.
TieKeys = Callable[[np.ndarray, np.ndarray], np.ndarray]


def metric_names(ks: Iterable[int]) -> list:
    """Names of the metrics :func:`all_metrics` returns, in reporting order."""
    ks = _check_ks(ks)
    return [f"{prefix}@{k}" for prefix in METRIC_PREFIXES for k in ks] + ["auc"]


def precision_at_k(scores, relevant, k: int, valid=None, seed: int = 0) -> np.ndarray:
    hits, n_rel, _, _ = _hits_and_ranks(scores, relevant, k, valid, seed)
    return np.where(n_rel > 0, hits / k, np.nan)


def recall_at_k(scores, relevant, k: int, valid=None, seed: int = 0) -> np.ndarray:
    hits, n_rel, _, _ = _hits_and_ranks(scores, relevant, k, valid, seed)
    return _divide(hits, n_rel)


def f1_at_k(scores, relevant, k: int, valid=None, seed: int = 0) -> np.ndarray:
    hits, n_rel, _, _ = _hits_and_ranks(scores, relevant, k, valid, seed)
    return _f1(hits / k, _divide(hits, n_rel))


def hit_rate_at_k(scores, relevant, k: int, valid=None, seed: int = 0) -> np.ndarray:
    hits, n_rel, _, _ = _hits_and_ranks(scores, relevant, k, valid, seed)
    return np.where(n_rel > 0, (hits > 0).astype(np.float64), np.nan)


def ndcg_at_k(scores, relevant, k: int, valid=None, seed: int = 0) -> np.ndarray:
    _, n_rel, ranks, slot_mask = _hits_and_ranks(scores, relevant, k, valid, seed)
    return _ndcg(ranks, slot_mask, n_rel, k)


def auc(scores, relevant, valid=None) -> np.ndarray:
    """Per-user AUC; a tied pair counts 0.5, so the result does not depend on any tie-break."""
    return rank_relevant(scores, relevant, valid).auc


def all_metrics(scores, relevant, ks: Sequence[int], valid=None, seed: int = 0,
                tie_keys: Optional[TieKeys] = None) -> Dict[str, np.ndarray]:
    """Every metric of :func:`metric_names` at once, ranking each user only once.

    ``tie_keys`` (optional) replaces the seeded tie-break: ``tie_keys(rows, columns)`` gets
    two equally long int arrays of cells of the batch and returns one sortable key per
    cell (the same key for the same cell on every call). It is only asked about cells tied
    with a relevant item. By default keys come from ``seed`` as in the single-metric
    functions, so ``all_metrics(...)["ndcg@5"]`` equals ``ndcg_at_k(..., 5)``.
    """
    ks = _check_ks(ks)
    ranked = rank_relevant(scores, relevant, valid, seed=seed, tie_keys=tie_keys)
    out = {}
    per_k = {}
    for k in ks:
        hits = ((ranked.ranks < k) & ranked.slot_mask).sum(axis=1)
        precision = np.where(ranked.num_relevant > 0, hits / k, np.nan)
        recall = _divide(hits, ranked.num_relevant)
        per_k[k] = {
            "hr": np.where(ranked.num_relevant > 0, (hits > 0).astype(np.float64), np.nan),
            "ndcg": _ndcg(ranked.ranks, ranked.slot_mask, ranked.num_relevant, k),
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
        }
    for prefix in METRIC_PREFIXES:
        for k in ks:
            out[f"{prefix}@{k}"] = per_k[k][prefix]
    out["auc"] = ranked.auc
    return out


class RankedRelevant:
    """Where each user's relevant candidates land in that user's ranking.

    ``ranks`` int64 ``[B, M]``: 0-based rank of the m-th relevant candidate of each user
    (M = the largest number of relevant candidates in the batch); ``slot_mask`` bool
    ``[B, M]`` marks the real slots; ``num_relevant`` / ``num_valid`` int64 ``[B]``;
    ``auc`` float ``[B]``.
    """

    __slots__ = ("ranks", "slot_mask", "num_relevant", "num_valid", "auc")

    def __init__(self, ranks, slot_mask, num_relevant, num_valid, auc):
        self.ranks, self.slot_mask = ranks, slot_mask
        self.num_relevant, self.num_valid, self.auc = num_relevant, num_valid, auc


def rank_relevant(scores, relevant, valid=None, seed: int = 0,
                  tie_keys: Optional[TieKeys] = None) -> RankedRelevant:
    """Rank of every relevant candidate, plus the per-user AUC, without sorting.

    Every metric here depends only on where the relevant items land, so instead of
    sorting all C candidates (C is the whole catalogue under full ranking) each relevant
    item is compared against the row: O(M * C) per user, with memory bounded by a few
    ``[B, C]`` masks however many relevant items a user has.
    """
    scores, relevant, valid = _check_inputs(scores, relevant, valid)
    batch, _ = scores.shape
    rows = np.arange(batch)
    num_relevant = relevant.sum(axis=1)
    num_valid = valid.sum(axis=1)
    slots = int(num_relevant.max()) if batch else 0
    # Column of the m-th relevant candidate per row; padding slots point at column 0.
    rel_rows, rel_cols = np.nonzero(relevant)
    offsets = np.concatenate([[0], np.cumsum(num_relevant)[:-1]])
    slot_of = np.arange(len(rel_rows)) - offsets[rel_rows]
    columns = np.zeros((batch, slots), dtype=np.int64)
    columns[rel_rows, slot_of] = rel_cols
    slot_mask = np.zeros((batch, slots), dtype=bool)
    slot_mask[rel_rows, slot_of] = True

    rel_scores = scores[rows[:, None], columns]  # [B, M]
    # Relevant-vs-relevant comparisons are tiny ([B, M, M]) and let AUC discount the
    # relevant items from the row-wide counts, leaving (relevant, irrelevant) pairs only.
    pair_mask = slot_mask[:, :, None] & slot_mask[:, None, :]
    rel_greater = ((rel_scores[:, None, :] > rel_scores[:, :, None]) & pair_mask).sum(axis=2)
    rel_equal = ((rel_scores[:, None, :] == rel_scores[:, :, None]) & pair_mask).sum(axis=2) - slot_mask

    if tie_keys is None:
        tie_keys = _seeded_tie_keys(seed, scores.shape)
    ranks = np.zeros((batch, slots), dtype=np.int64)
    greater_irrelevant = np.zeros((batch, slots), dtype=np.int64)
    equal_irrelevant = np.zeros((batch, slots), dtype=np.int64)
    for m in range(slots):
        own = rel_scores[:, m:m + 1]
        greater = ((scores > own) & valid).sum(axis=1)
        ties = (scores == own) & valid
        ties[rows, columns[:, m]] = False
        equal = ties.sum(axis=1)
        ranks[:, m] = greater
        tied_rows = np.flatnonzero((equal > 0) & slot_mask[:, m])
        if len(tied_rows):
            # Keys are fetched only for the cells tied with a relevant item: under full
            # ranking a popularity-like scorer ties thousands of items, a model almost none.
            which, other_columns = np.nonzero(ties[tied_rows])
            own_key = np.asarray(tie_keys(tied_rows, columns[tied_rows, m]))
            other_key = np.asarray(tie_keys(tied_rows[which], other_columns))
            ranks[tied_rows, m] += np.bincount(which, weights=other_key < own_key[which],
                                               minlength=len(tied_rows)).astype(np.int64)
        greater_irrelevant[:, m] = greater - rel_greater[:, m]
        equal_irrelevant[:, m] = equal - rel_equal[:, m]

    num_irrelevant = num_valid - num_relevant
    below = (num_irrelevant[:, None] - greater_irrelevant - 0.5 * equal_irrelevant) * slot_mask
    with np.errstate(invalid="ignore", divide="ignore"):
        user_auc = below.sum(axis=1) / (num_relevant * num_irrelevant)
    user_auc = np.where((num_relevant > 0) & (num_irrelevant > 0), user_auc, np.nan)
    ranks = np.where(slot_mask, ranks, np.iinfo(np.int64).max)
    return RankedRelevant(ranks, slot_mask, num_relevant, num_valid, user_auc)


def pair_keys(seed: int, users, items) -> np.ndarray:
    """Pseudo-random uint64 key per (user, item), a pure function of (seed, user, item).

    Used as the protocols' tie-break (so a result does not depend on batching or on the
    order of candidate columns) and by :class:`~tfvrec.evaluation.baselines.RandomScorer`.
    ``users`` broadcasts against ``items`` (e.g. ``[B, 1]`` with ``[B, C]``).
    """
    users = np.asarray(users).astype(np.uint64)
    items = np.asarray(items).astype(np.uint64)
    salt = mix64(np.asarray([seed], dtype=np.int64).astype(np.uint64))[0]
    # Two rounds of mixing so that neighbouring users (or items) get unrelated keys.
    return mix64(mix64(users ^ salt) ^ items)


def keys_to_unit_interval(keys: np.ndarray) -> np.ndarray:
    """Map uint64 keys to floats in [0, 1) with 53 random bits (the float64 mantissa)."""
    return (np.asarray(keys, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


# -- helpers ----------------------------------------------------------------------------

def _hits_and_ranks(scores, relevant, k, valid, seed):
    k = _check_k(k)
    ranked = rank_relevant(scores, relevant, valid, seed=seed)
    hits = ((ranked.ranks < k) & ranked.slot_mask).sum(axis=1)
    return hits, ranked.num_relevant, ranked.ranks, ranked.slot_mask


def _ndcg(ranks, slot_mask, num_relevant, k):
    in_top = (ranks < k) & slot_mask
    gains = np.where(in_top, 1.0 / np.log2(np.where(in_top, ranks, 0) + 2.0), 0.0)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_cumulative[np.minimum(num_relevant, k)]
    return _divide(gains.sum(axis=1), ideal)


def _f1(precision, recall):
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(total > 0, 2 * precision * recall / total, 0.0)
    return np.where(np.isnan(recall), np.nan, f1)


def _divide(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-300), np.nan)


def _seeded_tie_keys(seed, shape):
    keys = []  # drawn on first use only, then reused so every cell keeps its key

    def lookup(rows, columns):
        if not keys:
            keys.append(np.random.default_rng(seed).random(shape))
        return keys[0][rows, columns]
    return lookup


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _check_ks(ks):
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks has duplicates: {ks}")
    return ks


def _check_inputs(scores, relevant, valid):
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [users, candidates], got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    relevant = np.asarray(relevant)
    if relevant.shape != scores.shape:
        raise ValueError(f"relevant has shape {relevant.shape}, scores {scores.shape}")
    if relevant.dtype != bool:
        raise ValueError(f"relevant must be boolean, got dtype {relevant.dtype}")
    if valid is None:
        valid = np.ones(scores.shape, dtype=bool)
    else:
        valid = np.asarray(valid)
        if valid.shape != scores.shape:
            raise ValueError(f"valid has shape {valid.shape}, scores {scores.shape}")
        if valid.dtype != bool:
            raise ValueError(f"valid must be boolean, got dtype {valid.dtype}")
        if np.any(relevant & ~valid):
            row = int(np.flatnonzero((relevant & ~valid).any(axis=1))[0])
            raise ValueError(f"row {row}: a relevant candidate is masked out by valid")
    # Cheap whole-array check first: boolean indexing would copy a catalogue-wide batch.
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any() and np.isnan(scores[valid]).any():
        row = int(np.flatnonzero((np.isnan(scores) & valid).any(axis=1))[0])
        raise ValueError(f"row {row}: scores contain NaN for a valid candidate")
    return scores, relevant, valid
