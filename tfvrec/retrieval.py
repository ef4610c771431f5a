"""Top-K retrieval with exclusions, in one stage or two — the one implementation that the
serving SavedModel (`tfvrec.serving.module`) and in-process recommendation (HASC's
`tfvrec.models.hasc.retrieval`) both run.

One stage: the index score (dot product, or negated squared L2) is the model's score,
so the top K of the index is the answer. Two stages (a model whose exact score the
index only approximates, e.g. HASC's creator-dependent γ): the index proposes
``num_candidates`` ≥ K items, the exact score re-ranks them.

Exclusions are ragged int64 ``[B, (E)]`` catalogue rows (a user's training items, a
request's ``exclude``); an excluded item is never returned. Rows short of K eligible
items are padded with row 0 and score −inf, which callers turn into their padding.
"""
import numpy as np
import tensorflow as tf

NEG_INF = float("-inf")


def mask_excluded(scores, exclusions):
    """``scores`` ``[B, N]`` with −inf at every excluded (row, item)."""
    pairs = tf.stack([exclusions.value_rowids(), exclusions.flat_values], axis=1)
    return tf.tensor_scatter_nd_update(scores, pairs, tf.fill(tf.shape(pairs)[:1], tf.constant(NEG_INF,
                                                                                                 scores.dtype)))


def excluded_mask(candidates, exclusions, num_items):
    """Whether each candidate ``[B, n]`` (catalogue rows) is among its row's exclusions."""
    n_items = tf.constant(num_items, tf.int64)
    keys = tf.sort(tf.concat([[-1], exclusions.value_rowids() * n_items + exclusions.flat_values], 0))
    batch = tf.shape(candidates, out_type=tf.int64)[0]
    flat = tf.reshape(tf.range(batch)[:, tf.newaxis] * n_items + candidates, [-1])
    at = tf.searchsorted(keys, flat, out_type=tf.int64)
    found = tf.gather(keys, tf.minimum(at, tf.size(keys, out_type=tf.int64) - 1))
    return tf.reshape(tf.equal(found, flat), tf.shape(candidates))


def rerank(candidates, valid, exact_scores, k):
    """Top ``k`` of ``candidates`` ``[B, n]`` by ``exact_scores(candidates)`` (invalid: −inf).

    Returns ``(scores [B, k], rows [B, k])``.
    """
    exact = tf.where(valid, tf.cast(exact_scores(candidates), tf.float32), tf.constant(NEG_INF, tf.float32))
    top = tf.math.top_k(exact, k)
    return top.values, tf.gather(candidates, top.indices, batch_dims=1)


def brute_force_top_k(index_scores, exclusions, k, exact_scores=None, num_candidates=None):
    """Top ``k`` over every item's ``index_scores`` ``[B, N]``, exclusions removed first.

    With ``exact_scores`` (two-stage), the best ``max(num_candidates, k)`` by index score
    are re-ranked by it. Returns ``(scores [B, k], rows [B, k])`` (rows int64).
    """
    scores = mask_excluded(tf.cast(index_scores, tf.float32), exclusions)
    if exact_scores is None:
        top = tf.math.top_k(scores, k)
        return top.values, tf.cast(top.indices, tf.int64)
    n = tf.minimum(tf.maximum(num_candidates, k), tf.shape(scores)[1])
    first = tf.math.top_k(scores, n)
    return rerank(tf.cast(first.indices, tf.int64), first.values > NEG_INF, exact_scores, k)


def ann_top_k(candidates, exclusions, num_items, k, exact_scores):
    """Top ``k`` of an approximate index's ``candidates`` ``[B, n]`` (−1 or out of range:
    none found), exclusions removed, re-ranked by ``exact_scores``."""
    candidates = tf.cast(candidates, tf.int64)
    short = tf.maximum(k - tf.shape(candidates)[1], 0)  # an ANN index may find fewer than asked
    candidates = tf.pad(candidates, [[0, 0], [0, short]], constant_values=-1)
    valid = tf.logical_and(candidates >= 0, candidates < num_items)
    candidates = tf.where(valid, candidates, tf.zeros_like(candidates))
    valid = tf.logical_and(valid, tf.logical_not(excluded_mask(candidates, exclusions, num_items)))
    return rerank(candidates, valid, exact_scores, k)


def ragged_rows(per_row):
    """A list of int arrays (catalogue rows per query) as a ragged int64 tensor."""
    lengths = [len(r) for r in per_row]
    values = np.concatenate([np.asarray(r, np.int64) for r in per_row]) if per_row else np.zeros(0, np.int64)
    return tf.RaggedTensor.from_row_lengths(tf.constant(values, tf.int64), tf.constant(lengths, tf.int64))
