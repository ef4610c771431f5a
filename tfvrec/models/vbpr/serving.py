"""VBPR's export adapter (`tfvrec.serving.parts`): a dot-product index of [γ_i, E f_i, β_i + β'ᵀ f_i].

The user query [γ_u, θ_u, 1] gives x̂_ui exactly. An item without a training interaction, and a new
item exported with ``tfvrec index``, is its visual part [0, E f_i, β'ᵀ f_i] (γ_i = β_i = 0), the same
vector the in-process model scores it with; ``embed_items`` computes it from raw features in the graph.
"""
import numpy as np
import tensorflow as tf

from tfvrec.catalogue import merge_catalogue
from tfvrec.serving.parts import ExportError, ServingParts, batched, masked_mean


def build(config, dataset, model, new_items=None, replace_items=False):
    item_vectors = batched(model.item_vectors, dataset.num_items)
    user_vectors = batched(model.user_model, dataset.num_users)
    item_ids = np.asarray(dataset.item_ids, str)
    seen = dataset.train_items_by_user()
    if new_items is not None:
        new_ids, features = new_items
        if features.shape[1] != model.content_dim:
            raise ExportError(f"new item features are {features.shape[1]}-d, but this VBPR's item content is "
                              f"{model.content_dim}-d ({model.description})")
        new_vectors = np.asarray(model.embed_features(features), np.float32)
        try:
            merged_ids, item_vectors, _ = merge_catalogue(item_ids, item_vectors, new_ids, new_vectors, replace_items)
        except ValueError as e:  # DataError: duplicate ids, ids and vectors of different lengths
            raise ExportError(str(e)) from None
        position = {item: n for n, item in enumerate(merged_ids)}
        rows = np.array([position.get(i, -1) for i in item_ids], np.int64)
        seen = [np.unique(rows[s][rows[s] >= 0]) for s in seen]
        item_ids = merged_ids

    def profile_query(vectors, mask):
        # A new user has no γ_u, θ_u: the mean of the profile items' [γ_j, E f_j] (bias slot 1) — a
        # heuristic, not from the paper.
        mean = masked_mean(vectors, mask)
        return tf.concat([mean[:, :-1], tf.ones_like(mean[:, :1])], axis=-1)

    return ServingParts(
        model_name="vbpr", item_ids=item_ids, item_vectors=item_vectors, user_ids=np.asarray(dataset.user_ids, str),
        user_vectors=user_vectors, seen=seen, distance="dot_product", profile_query=profile_query,
        embed_items=model.embed_features, feature_dim=int(model.content_dim),
        notes={"user": "[γ_u, θ_u, 1] · [γ_i, E f_i, β_i + β'ᵀ f_i] = x̂_ui, the VBPR score",
               "new items": "[0, E f_i, β'ᵀ f_i]: the visual part alone (γ_i = β_i = 0)",
               "profile": "heuristic: mean of the profile items' vectors (bias slot 1); not from the paper",
               "content": model.description})

