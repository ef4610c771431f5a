"""HASC's export adapter (`tfvrec.serving.parts`): two-stage retrieval and the ``explain`` signature."""
import numpy as np
import tensorflow as tf

from tfvrec.models.hasc.explain import attention
from tfvrec.serving.parts import ExtraSignature, ServingParts, SignatureInput, batched, checked_range, no_new_items


def build(config, dataset, model, new_items=None, replace_items=False):
    """Two-stage (`tfvrec.models.hasc.retrieval`). The index holds [W_i, b_i]; a user's query is
    [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] with γ' over the user-side aspects; the retrieved
    ``export.rerank_candidates`` are re-ranked with the exact score (eq. 3, creator
    aspect and full γ). No cold start (P_a, Q_a are per-user parameters). ``explain``
    returns the hierarchical attention (γ, top α uploads, top β followees).
    """
    no_new_items("hasc", new_items)
    item_vectors = np.asarray(model.candidate_vectors(), np.float32)
    user_vectors = batched(model.query_vectors, dataset.num_users, batch=4096)

    def exact(user_rows, item_rows):
        return model.score_candidates(user_rows, item_rows)

    def explain_impl(module, user, item, top):
        """`tfvrec.models.hasc.explain.attention` (what ``tfvrec explain`` runs), ids in and out."""
        out = attention(model, module.lookup_users(user), module.lookup_items(item, "item"),
                        checked_range(top, 1, 100, "top"))

        def names(rows, table):
            return tf.where(rows >= 0, tf.gather(table, tf.maximum(rows, 0)), "")
        return {"score": out["score"], "aspects": out["gamma"], "creator": names(out["creator"], module.user_ids),
                "uploads": names(out["uploads"], module.item_ids), "upload_weights": out["alpha"],
                "followees": names(out["followees"], module.user_ids), "followee_weights": out["beta"],
                "num_uploads": out["num_uploads"], "num_followees": out["num_followees"]}

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
