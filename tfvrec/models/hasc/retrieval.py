"""HASC's two-stage top-K: retrieve by the user-side vector, re-rank with the exact score.

γ depends on the candidate's creator (the creator aspect, eq. 3), so no single
query vector scores every item exactly. The first stage ranks the catalogue by a dot
product of the query [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] (γ' = softmax over the two
user-side aspects) with [W_i, b_i] (`HASC.query_vectors`, `HASC.candidate_vectors`);
the best ``num_retrieve`` are re-ranked by R̂_ai. The search itself is
`tfvrec.retrieval.brute_force_top_k`, the one the serving SavedModel runs too.
"""
import numpy as np
import tensorflow as tf

from tfvrec import retrieval


def recommend(model, users, k=10, num_retrieve=200, exclude=None):
    """Two-stage top-``k`` of HASC ``model`` for user rows ``users`` [B].

    ``exclude``: per user an array of item rows never recommended (e.g. the training
    likes). Returns ``(items [B, k], scores [B, k])`` as numpy arrays; rows with fewer
    than ``k`` eligible items end in item −1 with score −inf.
    """
    users = tf.constant(np.asarray(users, np.int64))
    exclusions = retrieval.ragged_rows(exclude if exclude is not None else [[]] * int(users.shape[0]))
    index_scores = tf.matmul(model.query_vectors(users), model.candidate_vectors(), transpose_b=True)
    scores, rows = retrieval.brute_force_top_k(
        index_scores, exclusions, min(k, model.num_items),
        exact_scores=lambda candidates: model.score_candidates(users, candidates), num_candidates=num_retrieve)
    scores, rows = scores.numpy(), rows.numpy()
    return np.where(np.isfinite(scores), rows, -1), scores


def two_stage_recall(model, users, k=10, num_retrieve=200, exclude=None, batch_size=256):
    """Recall of `recommend`'s two-stage top-``k`` against the exact top-``k`` of full scoring.

    The mean over ``users`` of |two-stage top-k ∩ exact top-k| / k, both excluding
    ``exclude[u]`` (e.g. the training likes). 1.0 means the retrieval stage never
    loses an item the exact score would have ranked in the top ``k``.
    """
    users = np.asarray(users, np.int64)
    hits = []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        banned = None if exclude is None else [exclude[int(u)] for u in batch]
        scores = model.score_all(batch)
        if banned is not None:
            for row, items in enumerate(banned):
                scores[row, items] = -np.inf
        exact = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found, _ = recommend(model, batch, k=k, num_retrieve=num_retrieve, exclude=banned)
        hits += [len(np.intersect1d(a, b)) / k for a, b in zip(exact, found)]
    return float(np.mean(hits))
