"""CuratorNet's export adapter (`tfvrec.serving.parts`): index Φ(f_i), query Φ(P_u); both towers
are in the export, so new users (profiles) and new items (``tfvrec index``) need no retraining."""
import numpy as np
import tensorflow as tf

from tfvrec.catalogue import merge_catalogue
from tfvrec.serving.parts import ExportError, ServingParts, batched


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


def build(config, dataset, model, new_items=None, replace_items=False):
    """Index Φ(f_i), query Φ(P_u) (their dot product is eq. 2's x_ui); both towers are in the export.

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
        try:
            item_ids, item_vectors, _ = merge_catalogue(item_ids, item_vectors, new_ids, new_vectors, replace_items)
        except ValueError as e:  # DataError: duplicate ids, ids and vectors of different lengths
            raise ExportError(str(e)) from None

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
