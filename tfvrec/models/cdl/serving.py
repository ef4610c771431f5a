"""CDL's export adapter (`tfvrec.serving.parts`): a squared-L2 index of √w ⊙ π(I).

With non-negative distance weights w, D(U, I) = Σ_k w_k (φ(U)_k − π(I)_k)² = ‖√w ⊙ φ(U) − √w ⊙ π(I)‖²,
so ranking by D (ascending) is ranking by squared L2 distance between the scaled vectors:
the index holds √w ⊙ π(I) of every usable catalogue image, a query is √w ⊙ φ(U), and the
index's score −‖q − v‖² is exactly −D (dropout is off at inference).

Queries: ``user`` (known users: their stored vector), ``profile`` (a new user's liked item
ids → the tag-cluster histogram of those images, §5 → φ) and ``tags`` (a new user's tags →
their histogram → φ). Signature ``embed_images`` maps raw encoded images (JPEG/PNG bytes) to
index vectors, decoded and resized as in training; ``tfvrec index --items`` adds such
vectors (an npz of ids and ``embed_images`` outputs) to the catalogue without retraining.
"""
import numpy as np
import tensorflow as tf

from tfvrec.catalogue import merge_catalogue
from tfvrec.models.cdl import images as images_lib
from tfvrec.serving.parts import ExportError, ExtraSignature, QueryInput, ServingParts, SignatureInput


def scaled_vectors(model):
    """``(item vectors [N, d], user vectors [U, d], √w [d])``: √w ⊙ π(I) and √w ⊙ φ(U)."""
    root = np.sqrt(np.maximum(model.distance_weights().numpy(), 0.0)).astype(np.float32)
    items = model.catalogue_embeddings() * root
    users = np.concatenate([model.user_model(model.user_vectors[lo:lo + 4096]).numpy()
                            for lo in range(0, model.num_users, 4096)]) * root
    return items.astype(np.float32), users.astype(np.float32), root


def build(config, dataset, model, new_items=None, replace_items=False):
    c = config.model.cdl
    item_vectors, user_vectors, root = scaled_vectors(model)
    usable = np.flatnonzero(model.usable)  # items without a readable image are not in the index
    item_ids = np.asarray(dataset.item_ids, str)[usable]
    item_vectors = item_vectors[usable]
    counts = model.tag_clusters.item_counts[usable]
    if new_items is not None:
        new_ids, vectors = new_items
        if vectors.shape[1] != item_vectors.shape[1]:
            raise ExportError(f"new item vectors are {vectors.shape[1]}-d, but this CDL's index vectors are "
                              f"{item_vectors.shape[1]}-d: compute them with the export's embed_images signature")
        try:
            merged_ids, item_vectors, _ = merge_catalogue(item_ids, item_vectors, new_ids, vectors, replace_items)
        except ValueError as e:
            raise ExportError(str(e)) from None
        old = {i: n for n, i in enumerate(item_ids)}
        counts = np.stack([counts[old[i]] if i in old else np.zeros(counts.shape[1], np.float32)
                           for i in merged_ids]) if len(merged_ids) else counts[:0]
        item_ids = merged_ids
    position = {i: n for n, i in enumerate(item_ids)}
    dataset_ids = np.asarray(dataset.item_ids, str)
    seen = [np.unique([position[dataset_ids[i]] for i in items if dataset_ids[i] in position]).astype(np.int64)
            for items in dataset.train_items_by_user()]

    sqrt_w = tf.constant(root)
    item_counts = tf.Variable(counts.astype(np.float32), trainable=False, name="item_tag_clusters")
    clusters = model.tag_clusters
    keep = clusters.tag_cluster >= 0
    tag_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant([str(t) for t in clusters.vocabulary[keep]], tf.string),
        tf.constant(clusters.tag_cluster[keep], tf.int64)), default_value=-1)
    num_clusters = clusters.num_clusters

    def query_of_counts(counts):
        vectors = counts / tf.maximum(tf.reduce_sum(counts, axis=-1, keepdims=True), 1e-12)
        return model.user_model(vectors) * sqrt_w

    def profile_query(module, profile):
        rows = module.lookup_items(profile, "profile", allow_padding=True)
        mask = rows >= 0
        safe = tf.where(mask, rows, tf.zeros_like(rows))
        counts = tf.reduce_sum(tf.gather(item_counts, safe) * tf.cast(mask, tf.float32)[..., None], axis=1)
        return query_of_counts(counts), tf.ragged.boolean_mask(safe, mask)

    def tags_query(module, tags):
        found = tag_table.lookup(tags)
        counts = tf.reduce_sum(tf.one_hot(found, num_clusters, dtype=tf.float32), axis=1)  # -1 → zeros
        nothing = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros([tf.shape(tags)[0]], tf.int64))
        return query_of_counts(counts), nothing

    backbone = images_lib.pretrained_backbone() if c.backbone != "none" else None
    size = 224 if backbone is not None else c.image_size

    def embed_images(module, images):
        if backbone is not None:  # float pixels, as the catalogue's features were computed
            inputs = backbone(images_lib.decode_bytes(images, size, as_uint8=False))
        else:  # uint8 rounding, as the pixel cache the tower trained on
            inputs = tf.cast(images_lib.decode_bytes(images, size), tf.float32) / 255.0
        return {"embeddings": model.image_model(inputs, training=False) * sqrt_w}

    trackables = {"cdl_weights": list(model.image_model.variables) + list(model.user_model.variables),
                  "cdl_item_tag_clusters": item_counts, "cdl_tag_table": tag_table}
    if backbone is not None:
        trackables["cdl_backbone"] = backbone
    return ServingParts(
        model_name="cdl", item_ids=item_ids, item_vectors=item_vectors,
        user_ids=np.asarray(dataset.user_ids, str), user_vectors=user_vectors, seen=seen, distance="squared_l2",
        query_inputs=[
            QueryInput("profile", tf.TensorSpec([None, None], tf.string),
                       "new user: item ids [B, P] they liked (\"\" pads) → their tag-cluster vector (§5)",
                       profile_query, tf.zeros([0, 0], tf.string)),
            QueryInput("tags", tf.TensorSpec([None, None], tf.string),
                       "new user: tags [B, T] (\"\" pads; unknown tags count for nothing)", tags_query,
                       tf.zeros([0, 0], tf.string))],
        extra_signatures={"embed_images": ExtraSignature(
            inputs=[SignatureInput("images", tf.TensorSpec([None], tf.string), None,
                                   "encoded images [N] (JPEG, PNG, GIF or BMP bytes)")],
            impl=embed_images, doc="index vectors √w ⊙ π(I) of new images (for tfvrec index --items)",
            outputs={"embeddings": f"[N, {item_vectors.shape[1]}] index vectors"})},
        trackables=trackables,
        notes={"user": "√w ⊙ φ(U) of the user's tag-cluster vector; −‖q − v‖² = −D(U, I) (§4)",
               "profile": "√w ⊙ φ of the tag-cluster histogram of the liked images (the paper's own user vector)",
               "tags": "√w ⊙ φ of the tag-cluster histogram of the given tags",
               "index": "√w ⊙ π(I) of every catalogue image with a readable image"},
        warmup_inputs={"embed_images": {"images": np.array([_tiny_png()], object)}})


def _tiny_png():
    return tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)).numpy()
