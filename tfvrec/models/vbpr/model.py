"""VBPR: Visual Bayesian Personalized Ranking (CuratorNet's state-of-the-art baseline).

He & McAuley, *VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback*,
AAAI 2016; as used by Cartagena et al. (CuratorNet §4.3, trained there on the D3 + D4
triplets of CuratorNet's guidelines: ``sampling: guidelines``).

- Predictor (eq. 2 of VBPR): x̂_ui = α + β_u + β_i + γ_uᵀγ_i + θ_uᵀ(E f_i) + β'ᵀ f_i.
  α and β_u cancel in every pairwise difference, so they are left out.
- Objective: BPR-Opt, Σ −ln σ(x̂_ui − x̂_uj) + λ_Θ‖Θ‖²; λ applies to the user and
  item parameters a batch touches, and to E and β' (Keras regularizers).
- Per-user (γ_u, θ_u) and per-item (γ_i, β_i) parameters. An item with no training
  interaction has learned nothing in γ_i and β_i, so it is scored by its visual part alone:
  γ_i = 0 and β_i = 0 (VBPR's cold-start item, §3 of the paper), x̂_ui = θ_uᵀ(E f_i) + β'ᵀ f_i —
  the same for a new item exported with `tfvrec index`. That is the weakness CuratorNet targets
  on one-of-a-kind art.

As in `tfvrec.models.bpr.model`, the towers' dot product is the exact score: the user
tower gives [γ_u, θ_u, 1], the item tower [γ_i, E f_i, β_i + β'ᵀ f_i].
"""
import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec import registry, tasks
from tfvrec.data import content as content_lib
from tfvrec.inputs import bootstrap_pairs
from tfvrec.models.base import RecommenderModel
from tfvrec.tasks import ScoredBatch


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
    """VBPR as a tfrs model. ``item_content`` float ``[num_items, d]`` is frozen; ``trained_items`` [num_items]
    marks the items with a training interaction (the others score with γ_i = β_i = 0)."""

    def __init__(self, num_users, item_content, latent_dim=100, visual_dim=100, l2=1e-4, init_stddev=0.01,
                 task=None, trained_items=None, description="", standardize=False):
        """``standardize``: f_i is z-scored per dimension with the catalogue's statistics, fixed, so a new
        item's raw features (`embed_features`) are scaled the same way."""
        super().__init__()
        item_content = np.asarray(item_content, dtype=np.float32)
        shift = item_content.mean(axis=0) if standardize else np.zeros(item_content.shape[1], np.float32)
        scale = np.sqrt(item_content.var(axis=0) + 1e-6) if standardize else np.ones(item_content.shape[1], np.float32)
        self.content_shift, self.content_scale = tf.constant(shift, tf.float32), tf.constant(scale, tf.float32)
        item_content = (item_content - shift) / scale
        self.num_users, (self.num_items, self.content_dim) = num_users, item_content.shape
        self.l2 = l2
        self.description = description
        self.item_content = tf.constant(item_content)
        trained = np.ones(self.num_items, bool) if trained_items is None else np.asarray(trained_items, bool)
        self.trained_items = tf.constant(trained.astype(np.float32))
        self.user_model = user_tower(num_users, latent_dim + visual_dim, init_stddev)
        self.item_model = item_tower(self.num_items, self.content_dim, latent_dim, visual_dim, l2, init_stddev)
        self.latent_dim = latent_dim
        self.task = task if task is not None else tasks.PairwiseRankingTask()

    def _raw_item_vectors(self, items):
        items = tf.reshape(tf.cast(items, tf.int64), [-1])
        return self.item_model([items, tf.gather(self.item_content, items)])

    def item_vectors(self, items):
        """[γ_i, E f_i, β_i + β'ᵀ f_i] of catalogue items; for an item without a training interaction its
        visual part alone, [0, E f_i, β'ᵀ f_i] (`embed_content`)."""
        items = tf.reshape(tf.cast(items, tf.int64), [-1])
        trained = tf.gather(self.trained_items, items)[:, None] > 0
        return tf.where(trained, self._raw_item_vectors(items), self.embed_content(tf.gather(self.item_content,
                                                                                             items)))

    def embed_content(self, content):
        """[0, E f, β'ᵀ f] of raw content ``[n, d]``: a new item's vector (γ = β = 0)."""
        content = tf.convert_to_tensor(content, tf.float32)
        visual = self.item_model.get_layer("E")(content)
        visual_bias = self.item_model.get_layer("beta_prime")(content)
        return tf.concat([tf.zeros([tf.shape(content)[0], self.latent_dim]), visual, visual_bias], axis=-1)

    def embed_features(self, features):
        """A new item's vector from its raw features ``[n, d]`` (normalised as the catalogue's content)."""
        return self.embed_content((tf.cast(features, tf.float32) - self.content_shift) / self.content_scale)

    def call(self, inputs):
        return self.score_candidates(inputs["user"], inputs["items"])

    def score_candidates(self, users, items):
        items = tf.cast(items, tf.int64)
        v = tf.reshape(self.item_vectors(items), tf.concat([tf.shape(items), [-1]], 0))
        return tf.einsum("bd,bcd->bc", self.user_model(tf.cast(users, tf.int64)), v)

    def score_all_items(self, users):
        return tf.matmul(self.user_model(tf.cast(users, tf.int64)),
                         self.item_vectors(tf.range(self.num_items, dtype=tf.int64)), transpose_b=True)

    def training_scores(self, inputs, training=False):
        """BPR-Opt's lists [x̂_ui, x̂_uj…] with λ‖Θ‖² on the user and item parameters of this triple (not the
        constant 1 or the content part E f_i, whose E is regularized once per step)."""
        items = tf.concat([inputs["positive"][:, None], tf.reshape(inputs["negatives"],
                                                                   [tf.shape(inputs["positive"])[0], -1])], axis=1)
        u = self.user_model(inputs["user"])
        v = tf.reshape(self._raw_item_vectors(items), tf.concat([tf.shape(items), [-1]], 0))
        scores = tf.einsum("bd,bcd->bc", u, v)
        user_norm = tf.reduce_sum(tf.square(u[:, :-1]), -1)
        item_norm = tf.reduce_sum(tf.square(v[..., :self.latent_dim]), [-2, -1])
        return ScoredBatch(scores, squared_norms=user_norm + item_norm, l2=self.l2)

    @property
    def evaluation_note(self):
        return self.description


def training_inputs(config, dataset, model, seed):
    """VBPR's training stream (`tfvrec.inputs`): LearnBPR's bootstrap pairs, or the triplets of the sampler
    registered as ``guidelines`` (CuratorNet's D3 + D4, the CuratorNet paper's VBPR), one negative each."""
    c, trainer = config.model.vbpr, config.trainer
    if c.sampling == "bootstrap":
        return bootstrap_pairs(dataset, trainer, seed)
    sampler = registry.resolve(registry.samplers.get(c.sampling, "model.vbpr.sampling"))(config, dataset,
                                                                                        c.guidelines)
    batch = trainer.batch_size
    logging.info("VBPR triplets: sampler '%s' with guidelines %s", c.sampling, c.guidelines)
    spec = {"profile": tf.TensorSpec([batch, None], tf.int64), "positive": tf.TensorSpec([batch], tf.int64),
            "negative": tf.TensorSpec([batch], tf.int64), "user": tf.TensorSpec([batch], tf.int64)}
    ds = tf.data.Dataset.from_generator(lambda: sampler.batches(seed, c.num_triplets, batch), output_signature=spec)
    ds = ds.map(lambda b: {"user": b["user"], "positive": b["positive"], "negatives": b["negative"][:, None]})
    steps = trainer.steps_per_epoch or max(1, math.ceil(c.num_triplets / (batch * trainer.epochs)))
    return ds.prefetch(4), steps


def create(config, dataset):
    c = config.model.vbpr
    content, description = content_lib.item_content(dataset, c.item_content, config.data.features,
                                                    key="model.vbpr.item_content")
    standardize = "features" in content_lib.content_parts(c.item_content) and c.feature_normalization == "standardize"
    # (An affine change of f_i: the same model class, better conditioned for Adam.)
    description += ", standardised" if standardize else ""
    trained = np.zeros(dataset.num_items, bool)
    trained[dataset.split("train")["item"].to_numpy(np.int64)] = True
    return VBPR(dataset.num_users, content, latent_dim=c.latent_dim, visual_dim=c.visual_dim, l2=c.l2,
                init_stddev=c.init_stddev, task=tasks.build(c, dataset), trained_items=trained,
                description=description, standardize=standardize)
