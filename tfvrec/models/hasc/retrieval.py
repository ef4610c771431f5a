"""HASC's two-stage top-K: retrieve by the user-side vector, re-rank with the exact score.

γ depends on the candidate's creator (the creator aspect, eq. 3), so no single
query vector scores every item exactly. The first stage ranks the catalogue by a dot
product of the query [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] (γ' = softmax over the two
user-side aspects) with [W_i, b_i] (`HASC.query_vectors`, `HASC.candidate_vectors`);
the best ``num_retrieve`` are re-ranked by R̂_ai. In process it is the export's own search:
the serving module of `tfvrec.models.hasc.serving` with ``export.rerank_candidates =
num_retrieve``, answering through its ``serving_default`` signature.
"""
import copy

import numpy as np
import tensorflow as tf

from tfvrec.serving.export import serving_module


def recommend(config, dataset, model, users, k=10, num_retrieve=200, exclude=None):
    """Two-stage top-``k`` of HASC ``model`` for user rows ``users`` [B], as served.

    ``exclude``: per user an array of item rows never recommended (e.g. the training
    likes). Returns ``(items [B, k], scores [B, k])`` as numpy arrays; rows with fewer
    than ``k`` eligible items end in item −1 with score −inf.
    """
    config = copy.deepcopy(config)
    config.export.index, config.export.exclude_seen = "brute_force", False
    config.export.rerank_candidates, config.export.max_k = int(num_retrieve), max(int(k), config.export.max_k)
    module = serving_module(config, dataset, model)
    item_ids = np.asarray(dataset.item_ids, str)
    banned = [[str(i) for i in item_ids[np.asarray(rows, np.int64)]] for rows in (exclude or [[]] * len(users))]
    width = max([len(b) for b in banned] + [0])
    out = module.signature_functions["serving_default"](
        user=tf.constant([str(u) for u in np.asarray(dataset.user_ids, str)[np.asarray(users, np.int64)]]),
        k=tf.constant(min(int(k), dataset.num_items), tf.int32),
        exclude=tf.constant([b + [""] * (width - len(b)) for b in banned], tf.string) if width else
        tf.zeros([len(users), 0], tf.string))
    ids, scores = out["item_ids"].numpy().astype(str), out["scores"].numpy().astype(np.float64)
    rows = np.full(ids.shape, -1, np.int64)
    found = ids != ""
    rows[found] = dataset.item_index(ids[found])
    return rows, np.where(found, scores, -np.inf)


def two_stage_recall(config, dataset, model, users, k=10, num_retrieve=200, exclude=None, batch_size=256):
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
        found, _ = recommend(config, dataset, model, batch, k=k, num_retrieve=num_retrieve, exclude=banned)
        hits += [len(np.intersect1d(a, b)) / k for a, b in zip(exact, found)]
    return float(np.mean(hits))
