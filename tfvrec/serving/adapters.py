"""Per-model serving adapters: what each model puts into its serving SavedModel.

An adapter is ``build(config, dataset, model, new_items=None, replace_items=False)
-> export.ServingParts``, registered under the model's ``model.name``. It gives the
catalogue (item ids and the vectors the retrieval index holds, SPEC §5), the query
vector of every known user, how a cold-start profile becomes a query, how raw item
features become item vectors (content models), an exact re-scoring function
(two-stage models) and any model-specific signature. Everything else — id tables,
index, exclusions, K, signatures, atomic versions — is `tfvrec.serving.export`.

``new_items`` is ``(item_ids, features)`` from ``tfvrec index --items``: content
models embed them with their item tower and add them to (or, with
``replace_items``, make them) the catalogue; id-embedding models refuse.

Signatures per model (besides ``serving_default`` and ``score``, which all have):

| model | query inputs | extra signatures | new items (`tfvrec index`) |
|---|---|---|---|
| bpr | user, profile (heuristic: mean item factors) | — | no (id embeddings) |
| curatornet | user, profile, profile_embeddings | embed_items | yes |
| hasc | user | explain | no (id embeddings) |
| cdl, cnn_permlp | not implemented yet | (tags for cnn_permlp) | — |
"""
import numpy as np
import tensorflow as tf

from tfvrec.serving.export import ExportError, ExtraSignature, ServingParts, SignatureInput, checked_range

_ADAPTERS = {}

# Models whose adapter is still to be written, and why (reported instead of a KeyError).
PENDING = {
    "cdl": "CDL is not implemented yet (SPEC §1); its adapter will index sqrt(w)*pi(I) with squared L2",
    "cnn_permlp": "CNN-PerMLP is not implemented yet (SPEC §2); its export is a 'tags' signature, not retrieval",
}


def register(name):
    def decorator(build):
        _ADAPTERS[name] = build
        return build
    return decorator


def adapter_names():
    return sorted(_ADAPTERS)


def get_adapter(name):
    if name in _ADAPTERS:
        return _ADAPTERS[name]
    if name in PENDING:
        raise ExportError(f"model {name!r} cannot be exported yet: {PENDING[name]}")
    raise ExportError(f"model {name!r} has no serving adapter; exportable models: {adapter_names()}")


def batched(fn, n, batch=65536):
    """``fn(tf.range(lo, hi))`` over ``[0, n)`` in batches, concatenated as float32 numpy."""
    out = [np.asarray(fn(tf.range(lo, min(n, lo + batch), dtype=tf.int64)), np.float32)
           for lo in range(0, n, batch)]
    return np.concatenate(out, axis=0)


def _no_new_items(model_name, new_items):
    if new_items is not None:
        raise ExportError(f"{model_name} represents items by learned id embeddings, so items it was not trained "
                          "on have no vector: retrain to add items (content models such as curatornet can "
                          "index new items from their features)")


def masked_mean(vectors, mask):
    weights = tf.cast(mask, vectors.dtype)[..., tf.newaxis]
    return tf.reduce_sum(vectors * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


# ----------------------------------------------------------------------------- BPR-MF

@register("bpr")
def bpr(config, dataset, model, new_items=None, replace_items=False):
    """BPR-MF: index [q_i, b_i], user query [p_u, 1] (their dot product is x_ui exactly).

    Cold start (``profile``): BPR has no user features, so a new user's query is the
    mean of their items' factors with the bias slot kept at 1 — a heuristic (it
    ranks items similar, on average, to the profile), not part of the paper.
    """
    _no_new_items("bpr", new_items)
    item_vectors = batched(model.item_model, dataset.num_items)
    user_vectors = batched(model.user_model, dataset.num_users)
    with_bias = bool(config.model.bpr.use_item_bias)

    def profile_query(vectors, mask):
        mean = masked_mean(vectors, mask)
        if with_bias:  # [mean q_j, 1]: the item bias b_i still counts once
            mean = tf.concat([mean[:, :-1], tf.ones_like(mean[:, :1])], axis=-1)
        return mean

    return ServingParts(
        model_name="bpr", item_ids=dataset.item_ids, item_vectors=item_vectors, user_ids=dataset.user_ids,
        user_vectors=user_vectors, seen=dataset.train_items_by_user(), distance="dot_product",
        profile_query=profile_query,
        notes={"user": "[p_u, 1] · [q_i, b_i] = x_ui, the BPR-MF score",
               "profile": "heuristic: mean of the profile items' factors q_j (bias slot 1); not from the paper"})


# ----------------------------------------------------------------------------- CuratorNet

def _merge_catalogue(item_ids, item_vectors, new_ids, new_vectors, replace):
    """Catalogue after `tfvrec index`: new items added (or replacing same-id items), or only them."""
    new_ids = np.asarray([str(i) for i in new_ids])
    if replace:
        return new_ids, np.asarray(new_vectors, np.float32)
    ids = [str(i) for i in item_ids]
    vectors = np.asarray(item_vectors, np.float32)
    position = {item: n for n, item in enumerate(ids)}
    update = np.array([position.get(i, -1) for i in new_ids])
    vectors = vectors.copy()
    vectors[update[update >= 0]] = new_vectors[update >= 0]
    added = update < 0
    return (np.concatenate([np.asarray(ids), new_ids[added]]),
            np.concatenate([vectors, np.asarray(new_vectors, np.float32)[added]], axis=0))


def _seen_rows(dataset, catalogue_ids):
    """Per user: catalogue rows of their training items (items no longer in the catalogue dropped)."""
    position = {item: n for n, item in enumerate(str(i) for i in catalogue_ids)}
    dataset_ids = np.asarray(dataset.item_ids, str)
    rows = np.array([position.get(i, -1) for i in dataset_ids], np.int64)
    out = []
    for items in dataset.train_items_by_user():
        mapped = rows[items]
        out.append(np.unique(mapped[mapped >= 0]))
    return out


@register("curatornet")
def curatornet(config, dataset, model, new_items=None, replace_items=False):
    """CuratorNet (SPEC §5): index Φ(f_i), query Φ(P_u); both towers are in the export.

    Known users' queries are their training profiles (the most recent
    ``max_profile_items`` purchases, as in training and evaluation); a cold-start
    ``profile`` of item ids or ``profile_embeddings`` of raw content runs the
    profile tower on them as given. ``embed_items`` and ``tfvrec index`` apply the
    item tower (with its fixed feature normalisation) to raw content.
    """
    content = model.item_content.numpy()
    item_vectors = np.concatenate([np.asarray(model.item_model(content[lo:lo + 8192]), np.float32)
                                   for lo in range(0, len(content), 8192)])
    catalogue_vectors = tf.constant(item_vectors)
    user_vectors = batched(lambda users: model.user_vectors(users, catalogue_vectors), dataset.num_users,
                           batch=4096)
    item_ids = np.asarray(dataset.item_ids, str)
    if new_items is not None:
        new_ids, features = new_items
        if features.shape[1] != model.content_dim:
            raise ExportError(f"new item features are {features.shape[1]}-d, but this CuratorNet's item content is "
                              f"{model.content_dim}-d ({model.description or config.model.curatornet.item_content})")
        new_vectors = np.concatenate([np.asarray(model.item_model(features[lo:lo + 8192]), np.float32)
                                      for lo in range(0, len(features), 8192)])
        item_ids, item_vectors = _merge_catalogue(item_ids, item_vectors, new_ids, new_vectors, replace_items)

    def profile_query(vectors, mask):
        return model.profile_model(tf.ragged.boolean_mask(vectors, mask))

    return ServingParts(
        model_name="curatornet", item_ids=item_ids, item_vectors=item_vectors,
        user_ids=np.asarray(dataset.user_ids, str), user_vectors=user_vectors, seen=_seen_rows(dataset, item_ids),
        distance="dot_product", profile_query=profile_query, embed_items=lambda f: model.item_model(f),
        feature_dim=int(model.content_dim),
        trackables={"curatornet_weights": list(model.item_model.variables) + list(model.profile_model.variables)},
        notes={"user": "Φ(P_u) of the user's training profile (most recent max_profile_items items) · Φ(f_i)",
               "profile": "Φ(P) of the given catalogue items (the model's own cold start, paper §3)",
               "profile_embeddings": "Φ(P) of raw item content vectors, e.g. image embeddings of new uploads",
               "content": model.description or config.model.curatornet.item_content})


# ----------------------------------------------------------------------------- HASC

@register("hasc")
def hasc(config, dataset, model, new_items=None, replace_items=False):
    """HASC (SPEC §5): two-stage. The index holds [W_i, b_i]; a user's query is
    [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] with γ' over the user-side aspects; the retrieved
    ``export.rerank_candidates`` are re-ranked with the exact score (eq. 3, creator
    aspect and full γ). No cold start (P_a, Q_a are per-user parameters). ``explain``
    returns the hierarchical attention (γ, top α uploads, top β followees).
    """
    _no_new_items("hasc", new_items)
    item_vectors = np.asarray(model.candidate_vectors(), np.float32)
    user_vectors = batched(model.query_vectors, dataset.num_users, batch=4096)

    def exact(user_rows, item_rows):
        return model.score_candidates(user_rows, item_rows)

    def explain_impl(module, user, item, top):
        users = module.lookup_users(user)
        items = module.lookup_items(item, "item")[:, tf.newaxis]
        batch = tf.shape(users, out_type=tf.int64)[0]
        ctx = model.user_context(users)
        creators = tf.gather(model.item_creator, items)
        gamma = model.aspect_weights(ctx, creators)[:, 0]
        score = model.score_candidates(users, items)[:, 0]
        top = checked_range(top, 1, 100, "top")

        def ranked(members, weights, rows, names):
            dense_w = tf.RaggedTensor.from_value_rowids(tf.cast(weights, tf.float32), rows, nrows=batch)
            dense_m = tf.RaggedTensor.from_value_rowids(members, rows, nrows=batch)
            dense_w, dense_m = dense_w.to_tensor(-1.0), dense_m.to_tensor(tf.constant(-1, tf.int64))
            short = tf.maximum(top - tf.shape(dense_w)[1], 0)
            dense_w = tf.pad(dense_w, [[0, 0], [0, short]], constant_values=-1.0)
            dense_m = tf.pad(dense_m, [[0, 0], [0, short]], constant_values=-1)
            best = tf.math.top_k(dense_w, top)
            chosen = tf.gather(dense_m, best.indices, batch_dims=1)
            valid = chosen >= 0
            return (tf.where(valid, tf.gather(names, tf.maximum(chosen, 0)), ""),
                    tf.where(valid, best.values, 0.0))

        uploads, alpha = ranked(ctx["uploads"], ctx["alpha"], ctx["upload_rows"], module.item_ids)
        followees, beta = ranked(ctx["followees"], ctx["beta"], ctx["followee_rows"], module.user_ids)
        creator = tf.where(creators[:, 0] >= 0, tf.gather(module.user_ids, tf.maximum(creators[:, 0], 0)), "")
        return {"score": score, "aspects": tf.cast(gamma, tf.float32), "creator": creator,
                "uploads": uploads, "upload_weights": alpha, "followees": followees, "followee_weights": beta,
                "num_uploads": tf.cast(ctx["upload_count"], tf.int32),
                "num_followees": tf.cast(ctx["followee_count"], tf.int32)}

    explain = ExtraSignature(
        inputs=[SignatureInput("user", tf.TensorSpec([None], tf.string), None, "user ids [B]"),
                SignatureInput("item", tf.TensorSpec([None], tf.string), None, "item ids [B], one per user"),
                SignatureInput("top", tf.TensorSpec([], tf.int32), tf.constant(5, tf.int32),
                               "how many uploads / followees to list, 1..100 (default 5)")],
        impl=explain_impl,
        doc="HASC's hierarchical attention for (user, item) pairs (Wu et al. §4.5)",
        outputs={"score": "[B] R̂_ai (eq. 3)", "aspects": "[B, 3] γ: upload, social, creator (0 when absent)",
                 "creator": "[B] the item's creator (\"\" none)",
                 "uploads": "[B, top] the user's uploads by α, largest first (\"\" pads)",
                 "upload_weights": "[B, top] α", "followees": "[B, top] followed users by β (\"\" pads)",
                 "followee_weights": "[B, top] β", "num_uploads": "[B] |L_a| (after the cap)",
                 "num_followees": "[B] |S_a| (after the cap)"})
    dataset_users = np.asarray(dataset.user_ids, str)
    return ServingParts(
        model_name="hasc", item_ids=np.asarray(dataset.item_ids, str), item_vectors=item_vectors,
        user_ids=dataset_users, user_vectors=user_vectors, seen=dataset.train_items_by_user(),
        distance="dot_product", exact_user_scores=exact,
        trackables={"hasc_weights": list(model.variables)},
        extra_signatures={"explain": explain},
        warmup_inputs={"explain": {"user": np.array([dataset_users[0]], object),
                                   "item": np.array([str(np.asarray(dataset.item_ids, str)[0])], object)}},
        notes={"user": "two-stage: index [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] · [W_i, b_i], then the exact eq. 3 score",
               "profile": "not available: HASC users are per-user parameters (P_a, Q_a)"})
