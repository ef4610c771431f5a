"""BPR-MF's export adapter (`tfvrec.serving.parts`): a dot-product index of [q_i, b_i]."""
import tensorflow as tf

from tfvrec.serving.parts import ServingParts, batched, masked_mean, no_new_items


def build(config, dataset, model, new_items=None, replace_items=False):
    """BPR-MF: index [q_i, b_i], user query [p_u, 1] (their dot product is x_ui exactly).

    Cold start (``profile``): BPR has no user features, so a new user's query is the
    mean of their items' factors with the bias slot kept at 1 — a heuristic (it
    ranks items similar, on average, to the profile), not part of the paper.
    """
    no_new_items("bpr", new_items)
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
