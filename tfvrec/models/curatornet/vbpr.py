"""VBPR: Visual Bayesian Personalized Ranking (CuratorNet's state-of-the-art baseline).

He & McAuley, *VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback*,
AAAI 2016; as used by Cartagena et al. (CuratorNet §4.3).

- Predictor (eq. 2 of VBPR): x̂_ui = α + β_u + β_i + γ_uᵀγ_i + θ_uᵀ(E f_i) + β'ᵀ f_i.
  α and β_u cancel in every pairwise difference, so they are left out.
- Objective: BPR-Opt, Σ −ln σ(x̂_ui − x̂_uj) + λ_Θ‖Θ‖²; λ applies to the user and
  item parameters a batch touches, and to E and β' (Keras regularizers).
- Per-user (γ_u, θ_u) and per-item (γ_i, β_i) parameters: an item never bought in
  training keeps its initial γ_i and β_i and is ranked by its content alone, which
  is the weakness CuratorNet targets on one-of-a-kind art.

As in `tfvrec.models.bpr.model`, the towers' dot product is the exact score: the user
tower gives [γ_u, θ_u, 1], the item tower [γ_i, E f_i, β_i + β'ᵀ f_i].
"""
import math

import numpy as np
import tensorflow as tf

from tfvrec.models.base import RecommenderModel
from tfvrec.models.bpr.model import bootstrap_pairs
from tfvrec.tasks import PairwiseRankingTask


def user_tower(num_users, dim, init_stddev, name="user_tower"):
    """user index → [γ_u, θ_u, 1]."""
    user = tf.keras.Input(shape=(), dtype=tf.int64, name="user")
    factors = tf.keras.layers.Embedding(num_users, dim, name="user_factors",
                                        embeddings_initializer=tf.keras.initializers.RandomNormal(
                                            stddev=init_stddev))(user)
    out = tf.keras.layers.Lambda(lambda x: tf.concat([x, tf.ones_like(x[:, :1])], axis=-1), name="append_one")(factors)
    return tf.keras.Model(user, out, name=name)


def item_tower(num_items, content_dim, latent_dim, visual_dim, l2, init_stddev, name="item_tower"):
    """(item index, content f_i) → [γ_i, E f_i, β_i + β'ᵀ f_i]."""
    item = tf.keras.Input(shape=(), dtype=tf.int64, name="item")
    content = tf.keras.Input(shape=(content_dim,), dtype=tf.float32, name="content")
    regularizer = tf.keras.regularizers.L2(l2) if l2 else None
    gamma = tf.keras.layers.Embedding(num_items, latent_dim, name="item_factors",
                                      embeddings_initializer=tf.keras.initializers.RandomNormal(
                                          stddev=init_stddev))(item)
    visual = tf.keras.layers.Dense(visual_dim, use_bias=False, kernel_regularizer=regularizer,
                                   kernel_initializer=tf.keras.initializers.RandomNormal(stddev=init_stddev),
                                   name="E")(content)
    beta = tf.keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros", name="item_bias")(item)
    visual_bias = tf.keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                        kernel_regularizer=regularizer, name="beta_prime")(content)
    bias = tf.keras.layers.Add(name="bias")([beta, visual_bias])
    return tf.keras.Model([item, content], tf.keras.layers.Concatenate(name="item_vector")([gamma, visual, bias]),
                          name=name)


class VBPR(RecommenderModel):
    """VBPR as a tfrs model. ``item_content`` float ``[num_items, d]`` is frozen."""

    def __init__(self, num_users, item_content, latent_dim=100, visual_dim=100, l2=1e-4, init_stddev=0.01,
                 task=None, sampler=None, num_triplets=None):
        super().__init__()
        item_content = np.asarray(item_content, dtype=np.float32)
        self.num_users, (self.num_items, content_dim) = num_users, item_content.shape
        self.l2 = l2
        self.item_content = tf.constant(item_content)
        self.user_model = user_tower(num_users, latent_dim + visual_dim, init_stddev)
        self.item_model = item_tower(self.num_items, content_dim, latent_dim, visual_dim, l2, init_stddev)
        self.task = task if task is not None else PairwiseRankingTask()
        # Optional CuratorNet triplet sampler (guidelines D3 + D4, the paper's §5.1 setting).
        self.sampler, self.num_triplets = sampler, num_triplets

    def item_vectors(self, items):
        items = tf.reshape(tf.cast(items, tf.int64), [-1])
        return self.item_model([items, tf.gather(self.item_content, items)])

    def call(self, inputs):
        return self.score_candidates(inputs["user"], inputs["items"])

    def score_candidates(self, users, items):
        items = tf.cast(items, tf.int64)
        v = tf.reshape(self.item_vectors(items), tf.concat([tf.shape(items), [-1]], 0))
        return tf.einsum("bd,bcd->bc", self.user_model(tf.cast(users, tf.int64)), v)

    def score_all_items(self, users):
        return tf.matmul(self.user_model(tf.cast(users, tf.int64)),
                         self.item_vectors(tf.range(self.num_items, dtype=tf.int64)), transpose_b=True)

    def compute_loss(self, inputs, training=False):
        items = tf.concat([inputs["positive"][:, None], tf.reshape(inputs["negatives"],
                                                                   [tf.shape(inputs["positive"])[0], -1])], axis=1)
        u = self.user_model(inputs["user"])
        v = tf.reshape(self.item_vectors(items), tf.concat([tf.shape(items), [-1]], 0))
        scores = tf.einsum("bd,bcd->bc", u, v)
        # λ‖Θ‖² on the user and item parameters of this triple (not the constant 1 or the
        # content part E f_i, whose E is regularized once per step).
        user_norm = tf.reduce_sum(tf.square(u[:, :-1]), -1)
        gamma_dim = self.item_model.get_layer("item_factors").output_dim
        item_norm = tf.reduce_sum(tf.square(v[..., :gamma_dim]), [-2, -1])
        return self.ranking_loss(scores, user_norm + item_norm, self.l2)

    def make_train_dataset(self, dataset, trainer, seed):
        if self.sampler is None:
            return bootstrap_pairs(dataset, trainer, seed)
        batch = trainer.batch_size
        spec = {"profile": tf.TensorSpec([batch, None], tf.int64), "positive": tf.TensorSpec([batch], tf.int64),
                "negative": tf.TensorSpec([batch], tf.int64), "user": tf.TensorSpec([batch], tf.int64)}
        ds = tf.data.Dataset.from_generator(lambda: self.sampler.batches(seed, self.num_triplets, batch),
                                            output_signature=spec)
        ds = ds.map(lambda b: {"user": b["user"], "positive": b["positive"], "negatives": b["negative"][:, None]})
        steps = trainer.steps_per_epoch or max(1, math.ceil(self.num_triplets / batch))
        return ds.prefetch(4), steps
